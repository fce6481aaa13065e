//! `GET /`: the status page, rendered on the server: HTML with inline CSS and inline SVG charts,
//! no scripts, fonts or anything else from elsewhere (it must work behind a private endpoint, and
//! the page's Content-Security-Policy forbids loading anything). It reloads itself every few
//! seconds and lays out in one column on a phone.

use std::fmt::Write;

use mirror_core::telemetry::report::{DestinationTableReport, ErrorReport, TableReport};
use mirror_core::telemetry::StatusReport;

use super::history::{key, History, Point, WINDOW_SECS};

/// Seconds between reloads.
const REFRESH_SECS: u32 = 5;

/// Text safe inside HTML elements and attribute values.
fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `1234567` as `1,234,567`.
fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Seconds as `850 ms`, `12.3 s`, `4 min 5 s`, `2 h 3 min`.
fn duration(secs: f64) -> String {
    if secs < 1.0 {
        format!("{:.0} ms", secs * 1000.0)
    } else if secs < 60.0 {
        format!("{secs:.1} s")
    } else if secs < 3600.0 {
        format!("{} min {} s", (secs / 60.0) as u64, secs as u64 % 60)
    } else {
        format!(
            "{} h {} min",
            (secs / 3600.0) as u64,
            (secs as u64 % 3600) / 60
        )
    }
}

fn rate(per_sec: f64) -> String {
    if per_sec >= 100.0 {
        format!("{}/s", count(per_sec.round() as u64))
    } else {
        format!("{per_sec:.1}/s")
    }
}

const STYLE: &str = r#"
:root { color-scheme: light dark; --fg: #1b1f24; --muted: #59636e; --bg: #f6f8fa; --card: #fff;
  --line: #d1d9e0; --ok: #1a7f37; --warn: #9a6700; --bad: #cf222e; --lag: #8250df; --rows: #0969da; }
@media (prefers-color-scheme: dark) { :root { --fg: #e6edf3; --muted: #9198a1; --bg: #0d1117;
  --card: #161b22; --line: #30363d; --ok: #3fb950; --warn: #d29922; --bad: #f85149;
  --lag: #ab7df8; --rows: #4493f8; } }
* { box-sizing: border-box; }
body { margin: 0; padding: 1rem; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto,
  "Helvetica Neue", Arial, sans-serif; color: var(--fg); background: var(--bg); }
header { display: flex; flex-wrap: wrap; gap: .5rem 1rem; align-items: baseline; margin-bottom: 1rem; }
h1 { font-size: 1.3rem; margin: 0; }
h2 { font-size: 1.05rem; margin: 1.2rem 0 .5rem; }
.muted { color: var(--muted); }
.badge { display: inline-block; padding: 0 .5rem; border-radius: 1rem; font-size: .85rem;
  border: 1px solid currentColor; white-space: nowrap; }
.ok { color: var(--ok); } .warn { color: var(--warn); } .bad { color: var(--bad); }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(min(100%, 22rem), 1fr)); gap: .8rem; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: .6rem; padding: .8rem;
  min-width: 0; overflow-wrap: anywhere; }
.card h3 { font-size: 1rem; margin: 0 0 .3rem; }
dl { display: grid; grid-template-columns: auto 1fr; gap: .1rem .8rem; margin: .5rem 0; }
dt { color: var(--muted); } dd { margin: 0; text-align: right; font-variant-numeric: tabular-nums; }
.bar { height: .6rem; background: var(--line); border-radius: .3rem; overflow: hidden; margin: .3rem 0; }
.bar span { display: block; height: 100%; background: var(--rows); }
svg { width: 100%; height: 4.5rem; display: block; }
.legend { font-size: .8rem; display: flex; justify-content: space-between; gap: .5rem; flex-wrap: wrap; }
.error { color: var(--bad); font-size: .85rem; margin-top: .4rem; }
ul.reasons { margin: .3rem 0 0; padding-left: 1.2rem; }
footer { margin-top: 1.5rem; font-size: .8rem; }
"#;

/// The page for `report`, with charts from `history`.
pub fn render(report: &StatusReport, history: &History) -> String {
    let mut html = String::with_capacity(16 * 1024);
    let _ = write!(
        html,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta http-equiv=\"refresh\" content=\"{REFRESH_SECS}\">\
         <title>mirror status</title><style>{STYLE}</style></head><body>"
    );
    header(&mut html, report);
    verdicts(&mut html, report);

    let _ = write!(html, "<h2>Tables</h2>");
    if report.tables.is_empty() {
        html.push_str("<p class=\"muted\">No table yet: the sources are still connecting or discovering collections.</p>");
    }
    html.push_str("<div class=\"grid\">");
    for table in &report.tables {
        table_card(&mut html, table, &history.points(&key(table)));
    }
    html.push_str("</div>");

    html.push_str("<h2>Sources and sinks</h2><div class=\"grid\">");
    for s in &report.sources {
        let _ = write!(
            html,
            "<section class=\"card\" data-source=\"{name}\"><h3>source {name} <span class=\"muted\">{ty}</span></h3>{badge}<dl>",
            name = esc(&s.name),
            ty = esc(&s.type_name),
            badge = match s.reachable {
                Some(true) => "<span class=\"badge ok\">connected</span>",
                Some(false) => "<span class=\"badge bad\">not connected</span>",
                None => "",
            },
        );
        for p in &s.positions {
            let _ = write!(
                html,
                "<dt>{}</dt><dd>{} ({} behind)</dd>",
                esc(&p.stream),
                esc(&p.text),
                duration(p.lag_seconds)
            );
        }
        if let Some(age) = s.checkpoint_age_seconds {
            let _ = write!(
                html,
                "<dt>last checkpoint</dt><dd>{} ago</dd>",
                duration(age)
            );
        }
        if let Some(n) = s.pending_items {
            let _ = write!(
                html,
                "<dt>not yet committed</dt><dd>{} items</dd>",
                count(n)
            );
        }
        html.push_str("</dl>");
        last_error(&mut html, s.last_error.as_ref());
        html.push_str("</section>");
    }
    for k in &report.sinks {
        let _ = write!(
            html,
            "<section class=\"card\" data-sink=\"{name}\"><h3>sink {name} <span class=\"muted\">{ty}</span></h3>{badge}",
            name = esc(&k.name),
            ty = esc(&k.type_name),
            badge = match k.opened {
                Some(true) => "<span class=\"badge ok\">open</span>",
                Some(false) => "<span class=\"badge warn\">opening</span>",
                None => "",
            },
        );
        if let Some(retries) = &k.retries {
            let total: u64 = retries.values().sum();
            let _ = write!(html, "<dl><dt>retries</dt><dd>{}</dd></dl>", count(total));
        }
        if let Some(d) = &k.destination {
            let _ = write!(
                html,
                "<dl class=\"destination\"><dt>destination</dt><dd>{}</dd><dt>its state</dt><dd>{}</dd>\
                 <dt>asked</dt><dd>{} ago</dd></dl>",
                esc(d.destination.as_deref().unwrap_or("?")),
                esc(d.state.as_deref().unwrap_or("unknown")),
                duration(d.checked_seconds_ago),
            );
            if let Some(e) = &d.error {
                let _ = write!(html, "<div class=\"error\">destination: {}</div>", esc(e));
            }
        }
        last_error(&mut html, k.last_error.as_ref());
        html.push_str("</section>");
    }
    html.push_str("</div>");
    let _ = writeln!(
        html,
        "<footer class=\"muted\">Reloads every {REFRESH_SECS} s. Generated {}. \
         JSON: <a href=\"/api/status\">/api/status</a> · Prometheus: <a href=\"/metrics\">/metrics</a></footer>\
         </body></html>",
        esc(&report.generated_at)
    );
    html
}

fn header(html: &mut String, report: &StatusReport) {
    let state = report.state.as_deref().unwrap_or("unknown");
    let class = match state {
        "running" => "ok",
        "failed" => "bad",
        _ => "warn",
    };
    let _ = write!(
        html,
        "<header><h1>mirror</h1><span class=\"muted\">version {}</span>\
         <span class=\"muted\">up {}</span><span class=\"badge {class}\" id=\"state\">{}</span></header>",
        esc(&report.version),
        duration(report.uptime_seconds.unwrap_or(0.0)),
        esc(state),
    );
}

fn verdicts(html: &mut String, report: &StatusReport) {
    for (name, verdict, good) in [
        ("ready", &report.ready, "ready"),
        ("health", &report.health, "healthy"),
    ] {
        let Some(v) = verdict else { continue };
        if v.ok {
            let _ = write!(
                html,
                "<span class=\"badge ok\" id=\"{name}\">{good}</span> "
            );
        } else {
            let _ = write!(
                html,
                "<div class=\"card\" id=\"{name}\"><span class=\"badge bad\">not {good}</span><ul class=\"reasons\">"
            );
            for r in &v.reasons {
                let _ = write!(html, "<li>{}</li>", esc(r));
            }
            html.push_str("</ul></div>");
        }
    }
}

fn last_error(html: &mut String, error: Option<&ErrorReport>) {
    if let Some(e) = error {
        let _ = write!(
            html,
            "<div class=\"error\">last error ({}, {}): {}</div>",
            esc(&e.kind),
            esc(&e.at),
            esc(&e.message)
        );
    }
}

fn table_card(html: &mut String, t: &TableReport, points: &[Point]) {
    let phase = t.phase.as_deref().unwrap_or("");
    let _ = write!(
        html,
        "<section class=\"card\" data-table=\"{name}\" data-phase=\"{phase}\" data-rows=\"{rows}\" data-copied=\"{copied}\">\
         <h3>{name}</h3><div class=\"muted\">{source} → {sink}</div>",
        name = esc(&t.table),
        phase = esc(phase),
        rows = t.rows_total.unwrap_or(0),
        copied = t.initial_sync.as_ref().map_or(0, |s| s.copied),
        source = esc(t.source.as_deref().unwrap_or("?")),
        sink = esc(t.sink.as_deref().unwrap_or("(no file yet)")),
    );
    match phase {
        "initial_sync" => html.push_str("<span class=\"badge warn\">initial sync</span>"),
        "streaming" => html.push_str("<span class=\"badge ok\">streaming</span>"),
        _ => {}
    }
    if let Some(sync) = t.initial_sync.as_ref().filter(|_| phase == "initial_sync") {
        let _ = write!(
            html,
            "<div class=\"bar\" role=\"progressbar\" aria-valuenow=\"{p:.1}\" aria-valuemin=\"0\" aria-valuemax=\"100\"><span style=\"width:{p:.1}%\"></span></div>\
             <div class=\"legend\"><span>{} of ~{} documents ({p:.1}%)</span><span>{}{}</span></div>",
            count(sync.copied),
            count(sync.estimated),
            sync.rate_per_second.map(rate).unwrap_or_default(),
            sync.eta_seconds
                .map(|s| format!(", ETA {}", duration(s)))
                .unwrap_or_default(),
            p = sync.percent,
        );
    }
    html.push_str("<dl>");
    if let Some(lag) = t.lag_seconds {
        let _ = write!(html, "<dt>lag</dt><dd class=\"lag\">{}</dd>", duration(lag));
    }
    if let Some(r) = t.rows_per_second {
        let _ = write!(html, "<dt>rows per second</dt><dd>{}</dd>", rate(r));
    }
    if let Some(rows) = t.rows_total {
        let _ = write!(html, "<dt>rows published</dt><dd>{}</dd>", count(rows));
    }
    if let Some(f) = &t.last_file {
        // `2026-12-02T15:32:09.220Z` as `15:32:09 UTC`: the day is rarely news on a live page.
        let time =
            f.at.get(11..19)
                .map_or(f.at.clone(), |t| format!("{t} UTC"));
        let _ = write!(
            html,
            "<dt>last file</dt><dd title=\"{:020}.parquet, {}\">no. {} at {}</dd>",
            f.number,
            esc(&f.at),
            count(f.number),
            esc(&time)
        );
    }
    if let Some(p) = &t.position {
        let _ = write!(html, "<dt>position</dt><dd>{}</dd>", esc(&p.text));
    }
    if let Some(d) = &t.destination {
        destination_facts(html, d);
    }
    html.push_str("</dl>");
    chart(html, points);
    last_error(html, t.last_error.as_ref());
    html.push_str("</section>");
}

/// What the destination (Fabric) applied of a table, and its own lag.
fn destination_facts(html: &mut String, d: &DestinationTableReport) {
    let mut applied = d.state.clone().unwrap_or_else(|| "listed".into());
    if let Some(n) = d.applied_rows {
        let _ = write!(applied, ", {} rows applied", count(n));
        if let Some(w) = d.written_rows.filter(|w| *w != n) {
            let _ = write!(applied, " of {}", count(w));
        }
    }
    let _ = write!(
        html,
        "<dt>in Fabric</dt><dd class=\"destination{}\">{}</dd>",
        if d.failed { " bad" } else { "" },
        esc(&applied)
    );
    match (d.lag_seconds, &d.lag_unknown) {
        (Some(lag), _) => {
            let _ = write!(
                html,
                "<dt>Fabric lag</dt><dd class=\"destination-lag\">{}</dd>",
                duration(lag)
            );
        }
        (None, Some(why)) => {
            let _ = write!(
                html,
                "<dt>Fabric lag</dt><dd class=\"destination-lag muted\" title=\"{}\">unknown</dd>",
                esc(why)
            );
        }
        (None, None) => {}
    }
    if let Some(e) = &d.error {
        let _ = write!(
            html,
            "<dt>Fabric error</dt><dd class=\"bad\">{}</dd>",
            esc(e)
        );
    }
}

/// Lag and throughput over the last 15 minutes, as two lines scaled to their own maximum.
fn chart(html: &mut String, points: &[Point]) {
    const W: f64 = 300.0;
    const H: f64 = 60.0;
    let Some(last) = points.last() else {
        html.push_str("<p class=\"muted legend\">charts appear after the first samples</p>");
        return;
    };
    let start = last.at - WINDOW_SECS;
    let x = |at: f64| ((at - start) / WINDOW_SECS * W).clamp(0.0, W);
    let lags: Vec<(f64, f64)> = points
        .iter()
        .filter_map(|p| p.lag.map(|l| (p.at, l)))
        .collect();
    let rates: Vec<(f64, f64)> = points
        .windows(2)
        .filter(|w| w[1].at > w[0].at)
        .map(|w| {
            (
                w[1].at,
                w[1].rows.saturating_sub(w[0].rows) as f64 / (w[1].at - w[0].at),
            )
        })
        .collect();
    let line = |values: &[(f64, f64)]| -> (String, f64) {
        let max = values.iter().map(|v| v.1).fold(0.0f64, f64::max);
        let scale = if max > 0.0 { max } else { 1.0 };
        let pts: Vec<String> = values
            .iter()
            .map(|(at, v)| format!("{:.1},{:.1}", x(*at), H - 2.0 - v / scale * (H - 4.0)))
            .collect();
        (pts.join(" "), max)
    };
    let (lag_line, lag_max) = line(&lags);
    let (rate_line, rate_max) = line(&rates);
    let _ = write!(
        html,
        "<svg viewBox=\"0 0 {W} {H}\" preserveAspectRatio=\"none\" role=\"img\" aria-label=\"lag and rows per second over the last 15 minutes\">\
         <line x1=\"0\" y1=\"{H}\" x2=\"{W}\" y2=\"{H}\" stroke=\"var(--line)\"/>\
         <polyline fill=\"none\" stroke=\"var(--rows)\" stroke-width=\"1.5\" vector-effect=\"non-scaling-stroke\" points=\"{rate_line}\"/>\
         <polyline fill=\"none\" stroke=\"var(--lag)\" stroke-width=\"1.5\" vector-effect=\"non-scaling-stroke\" points=\"{lag_line}\"/>\
         </svg><div class=\"legend\"><span style=\"color:var(--lag)\">lag, max {}</span>\
         <span style=\"color:var(--rows)\">rows/s, max {}</span><span class=\"muted\">15 min</span></div>",
        duration(lag_max),
        rate(rate_max),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_and_numbers_are_readable() {
        assert_eq!(
            esc("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
        assert_eq!(count(1_234_567), "1,234,567");
        assert_eq!(count(12), "12");
        assert_eq!(duration(0.25), "250 ms");
        assert_eq!(duration(125.0), "2 min 5 s");
    }
}
