//! The simulator driven over plain HTTP the way the writers known to work against OneLake in
//! production drive it — the MongoDB_Fabric_Mirroring app (`push_file_to_lz.py`: create, then
//! one `append&flush=true`, no `x-ms-version`) and Microsoft's open-mirroring Python SDK
//! (`OpenMirroringClient.rename_file`: the rename source as a full OneLake URL) — and through the
//! documented forms and answers of the ADLS Gen2 operations (Path - Create, Update, Lease, List,
//! Get Properties, Delete).

use onelake_sim::OneLakeSim;
use reqwest::{Client, Method, Response};

const LZ: &str = "ws/item.MountedRelationalDatabase/Files/LandingZone";
const ONELAKE: &str = "https://onelake.dfs.fabric.microsoft.com";

/// A request: method, URL, headers and body.
type Req<'a> = (Method, String, &'a [(&'a str, &'a str)], &'static [u8]);

/// A request and the status and `x-ms-error-code` ("" for none) it must be answered with.
type Step<'a> = (Req<'a>, u16, &'a str);

async fn send(client: &Client, (method, url, headers, body): Req<'_>) -> Response {
    let mut r = client
        .request(method, url)
        .header("authorization", "Bearer token")
        .body(body);
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    r.send().await.expect("the simulator answers")
}

fn code(r: &Response) -> &str {
    r.headers()
        .get("x-ms-error-code")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// Sends the steps in order, checks each answer, and returns the last response.
async fn run(client: &Client, steps: Vec<Step<'_>>) -> Response {
    let mut last = None;
    for ((method, url, headers, body), status, error) in steps {
        let what = format!("{method} {url} {headers:?}");
        let r = send(client, (method, url, headers, body)).await;
        assert_eq!((r.status().as_u16(), code(&r)), (status, error), "{what}");
        last = Some(r);
    }
    last.expect("at least one step")
}

async fn get(client: &Client, url: &str) -> (u16, Vec<u8>) {
    let r = send(client, (Method::GET, url.to_owned(), &[], b"")).await;
    (r.status().as_u16(), r.bytes().await.unwrap().to_vec())
}

fn header(r: &Response, name: &str) -> String {
    r.headers()[name].to_str().unwrap().to_owned()
}

/// `PUT ?resource=file`, then `PATCH ?position=0&action=append&flush=true` with the data: the
/// file holds the data afterwards (it used to stay empty: the append was never flushed).
#[tokio::test]
async fn append_with_flush_true_publishes_the_data_as_the_python_app_does() {
    let sim = OneLakeSim::start().await.unwrap();
    let client = Client::new();
    let file = format!(
        "{}/{LZ}/orders/00000000000000000001.parquet",
        sim.endpoint()
    );
    let at = |query: &str| format!("{file}?{query}");
    // The app sends no x-ms-version (requests.put(token_url, data={}, headers=...)); append
    // answers 202, flushed or not.
    let named = [("x-ms-file-name", "00000000000000000001.parquet")];
    let create = (Method::PUT, at("resource=file"), &[][..], &b""[..]);
    let append = (
        Method::PATCH,
        at("position=0&action=append&flush=true"),
        &named[..],
        &b"PAR1 data PAR1"[..],
    );
    run(&client, vec![(create, 201, ""), (append, 202, "")]).await;
    assert_eq!(get(&client, &file).await, (200, b"PAR1 data PAR1".to_vec()));

    // Appending more at the end and flushing in the same call extends it.
    let v2020 = [("x-ms-version", "2020-06-12")];
    let more = (
        Method::PATCH,
        at("position=14&action=append&flush=true"),
        &v2020[..],
        &b"+more"[..],
    );
    run(&client, vec![(more, 202, "")]).await;
    assert_eq!(get(&client, &file).await.1, b"PAR1 data PAR1+more".to_vec());
    // A gap is refused and leaves the file as it was.
    let gap = (
        Method::PATCH,
        at("position=100&action=append&flush=true"),
        &[][..],
        &b"x"[..],
    );
    run(&client, vec![(gap, 400, "InvalidFlushPosition")]).await;
    assert_eq!(get(&client, &file).await.1, b"PAR1 data PAR1+more".to_vec());
    // Without flush the data stays uncommitted until a flush at the new length.
    let unflushed = (
        Method::PATCH,
        at("position=19&action=append"),
        &[][..],
        &b"!"[..],
    );
    run(&client, vec![(unflushed, 202, "")]).await;
    assert_eq!(get(&client, &file).await.1.len(), 19);
    let flush = (
        Method::PATCH,
        at("position=20&action=flush"),
        &[][..],
        &b""[..],
    );
    run(&client, vec![(flush, 200, "")]).await;
    assert_eq!(get(&client, &file).await.1.len(), 20);
}

/// A rename whose `x-ms-rename-source` is a full URL — OneLake's own host, as Microsoft's SDK
/// sends it, or the host the simulator is reached on — moves the file like the documented
/// `/{filesystem}/{path}` form (the URL form used to be answered 404). Another host is refused
/// with 400 `InvalidSourceUri` and a JSON error body.
#[tokio::test]
async fn renames_take_the_source_as_a_path_or_as_a_full_url() {
    let sim = OneLakeSim::start().await.unwrap();
    let client = Client::new();
    let folder = format!("{LZ}/orders");
    let url = |name: &str| format!("{}/{folder}/{name}", sim.endpoint());
    let host = sim.endpoint().trim_start_matches("http://").to_owned();
    let sources = [
        format!("{ONELAKE}/{folder}/_temp_1.parquet"),
        format!("http://{host}/{folder}/_temp_2.parquet"),
        format!("/{folder}/_temp_3.parquet"),
    ];
    for (i, source) in sources.iter().enumerate() {
        let n = i + 1;
        let temp = url(&format!("_temp_{n}.parquet"));
        let target = url(&format!("{n:020}.parquet"));
        let rename = [
            ("x-ms-rename-source", source.as_str()),
            ("x-ms-version", "2020-06-12"),
        ];
        let steps = vec![
            (
                (
                    Method::PUT,
                    format!("{temp}?resource=file"),
                    &[][..],
                    &b""[..],
                ),
                201,
                "",
            ),
            (
                (
                    Method::PATCH,
                    format!("{temp}?position=0&action=append&flush=true"),
                    &[][..],
                    &b"contents"[..],
                ),
                202,
                "",
            ),
            (
                (Method::PUT, target.clone(), &rename[..], &b""[..]),
                201,
                "",
            ),
        ];
        run(&client, steps).await;
        assert_eq!(get(&client, &target).await, (200, b"contents".to_vec()));
        assert_eq!(get(&client, &temp).await.0, 404, "the source is gone");
    }
    // If-None-Match: * refuses to replace the published file, in either form; a host other than
    // OneLake's or the simulator's is refused, with a JSON error body.
    let onelake_source = format!("{ONELAKE}/{folder}/_temp_4.parquet");
    let no_overwrite = [
        ("x-ms-rename-source", onelake_source.as_str()),
        ("if-none-match", "*"),
    ];
    let elsewhere_source = format!("https://storage.example.com/{folder}/_temp_4.parquet");
    let elsewhere = [("x-ms-rename-source", elsewhere_source.as_str())];
    let steps = vec![
        (
            (
                Method::PUT,
                url("_temp_4.parquet?resource=file"),
                &[][..],
                &b""[..],
            ),
            201,
            "",
        ),
        (
            (
                Method::PUT,
                url(&format!("{:020}.parquet", 1)),
                &no_overwrite[..],
                &b""[..],
            ),
            409,
            "PathAlreadyExists",
        ),
        (
            (Method::PUT, url("x.parquet"), &elsewhere[..], &b""[..]),
            400,
            "InvalidSourceUri",
        ),
    ];
    let r = run(&client, steps).await;
    let body: serde_json::Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
    assert_eq!(body["error"]["code"], "InvalidSourceUri");
    // A missing source, and a destination whose parent folder does not exist.
    let missing_source = format!("/{folder}/nothing.parquet");
    let missing = [("x-ms-rename-source", missing_source.as_str())];
    let temp_source = format!("/{folder}/_temp_4.parquet");
    let temp = [("x-ms-rename-source", temp_source.as_str())];
    let steps = vec![
        (
            (Method::PUT, url("y.parquet"), &missing[..], &b""[..]),
            404,
            "SourcePathNotFound",
        ),
        (
            (
                Method::PUT,
                url("no/such/dir/y.parquet"),
                &temp[..],
                &b""[..],
            ),
            404,
            "RenameDestinationParentPathNotFound",
        ),
    ];
    run(&client, steps).await;
}

/// Requests the specification documents as invalid get its status and code, and valid optional
/// forms are accepted.
#[tokio::test]
async fn path_operations_answer_the_documented_errors() {
    let sim = OneLakeSim::start().await.unwrap();
    let client = Client::new();
    let base = format!("{}/{LZ}/t", sim.endpoint());
    let file = format!("{base}/f.bin");
    let at = |query: &str| format!("{file}?{query}");
    let none: &[(&str, &str)] = &[];
    let create = [
        ("x-ms-properties", "source=bW9uZ28="),
        ("x-ms-owner", "someone"),
    ];
    let r = run(
        &client,
        vec![(
            (Method::PUT, at("resource=file"), &create[..], &b""[..]),
            201,
            "",
        )],
    )
    .await;
    assert_eq!(
        header(&r, "x-ms-rejected-headers"),
        "x-ms-owner",
        "OneLake ignores ownership headers and says so"
    );
    let unknown_version = [("x-ms-version", "2099-01-01")];
    let v2023 = [("x-ms-version", "2023-11-03")];
    let parquet = [("x-ms-content-type", "application/vnd.apache.parquet")];
    let steps = vec![
        (
            (Method::PATCH, at("action=append"), none, &b"abc"[..]),
            400,
            "MissingRequiredQueryParameter",
        ),
        (
            (
                Method::PATCH,
                at("action=append&position=0"),
                &unknown_version[..],
                &b"abc"[..],
            ),
            400,
            "InvalidHeaderValue",
        ),
        (
            (
                Method::PATCH,
                at("action=append&position=0"),
                &v2023[..],
                &b"abc"[..],
            ),
            202,
            "",
        ),
    ];
    let r = run(&client, steps).await;
    assert_eq!(header(&r, "x-ms-version"), "2023-11-03");
    let steps = vec![
        (
            (
                Method::PATCH,
                at("action=flush&position=3"),
                none,
                &b"x"[..],
            ),
            400,
            "ContentLengthMustBeZero",
        ),
        (
            (
                Method::PATCH,
                at("action=flush&position=3&close=true&retainUncommittedData=false"),
                &parquet[..],
                &b""[..],
            ),
            200,
            "",
        ),
    ];
    run(&client, steps).await;
    // Path - Get Properties: user properties come back as x-ms-properties.
    let json = [("accept", "application/json")];
    let r = run(
        &client,
        vec![(
            (Method::HEAD, at("action=getStatus"), &json[..], &b""[..]),
            200,
            "",
        )],
    )
    .await;
    assert_eq!(header(&r, "content-type"), "application/vnd.apache.parquet");
    assert_eq!(header(&r, "x-ms-properties"), "source=bW9uZ28=");
    assert_eq!(header(&r, "content-length"), "3");
    // Range past the end: 416. OneLake blocks setting access control. List Paths needs
    // `recursive`; a missing directory is 404.
    let range = [("range", "bytes=10-20")];
    let acl = [("x-ms-acl", "user::rwx")];
    let list = format!("{}/ws?resource=filesystem", sim.endpoint());
    let steps = vec![
        (
            (Method::GET, file.clone(), &range[..], &b""[..]),
            416,
            "InvalidRange",
        ),
        (
            (
                Method::PATCH,
                at("action=setAccessControl"),
                &acl[..],
                &b""[..],
            ),
            400,
            "UnsupportedQueryParameter",
        ),
        (
            (Method::GET, list.clone(), none, &b""[..]),
            400,
            "MissingRequiredQueryParameter",
        ),
        (
            (
                Method::GET,
                format!("{list}&recursive=false&directory=nope"),
                none,
                &b""[..],
            ),
            404,
            "PathNotFound",
        ),
    ];
    run(&client, steps).await;
    // Pages follow x-ms-continuation.
    let creates = ["a", "b", "c", "d", "e"]
        .into_iter()
        .map(|name| {
            let url = format!("{base}/{name}?resource=file");
            ((Method::PUT, url, none, &b""[..]), 201, "")
        })
        .collect();
    run(&client, creates).await;
    let mut names = Vec::new();
    let mut continuation: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut url = format!(
            "{list}&recursive=true&directory=item.MountedRelationalDatabase/Files/LandingZone/t&maxResults=2"
        );
        if let Some(c) = &continuation {
            url.push_str(&format!("&continuation={}", urlencode(c)));
        }
        let r = run(&client, vec![((Method::GET, url, none, &b""[..]), 200, "")]).await;
        continuation = r
            .headers()
            .get("x-ms-continuation")
            .map(|v| v.to_str().unwrap().to_owned());
        let body: serde_json::Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
        let page = body["paths"].as_array().unwrap();
        assert!(page.len() <= 2);
        names.extend(page.iter().map(|p| {
            let name = p["name"].as_str().unwrap();
            name.rsplit('/').next().unwrap().to_owned()
        }));
        pages += 1;
        if continuation.is_none() {
            break;
        }
    }
    assert_eq!(names, ["a", "b", "c", "d", "e", "f.bin"]);
    assert_eq!(pages, 3);
    // Path - Delete of a non-empty directory needs recursive=true.
    let steps = vec![
        (
            (
                Method::DELETE,
                format!("{base}?recursive=false"),
                none,
                &b""[..],
            ),
            409,
            "DirectoryNotEmpty",
        ),
        (
            (
                Method::DELETE,
                format!("{base}?recursive=true"),
                none,
                &b""[..],
            ),
            200,
            "",
        ),
    ];
    run(&client, steps).await;
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Path - Lease: a leased file refuses writers that do not name the lease, until it is released.
#[tokio::test]
async fn a_leased_path_needs_its_lease_id() {
    let sim = OneLakeSim::start().await.unwrap();
    let client = Client::new();
    let file = format!("{}/{LZ}/leased.bin", sim.endpoint());
    let append = format!("{file}?action=append&position=0&flush=true");
    let none: &[(&str, &str)] = &[];
    let infinite = [
        ("x-ms-lease-action", "acquire"),
        ("x-ms-lease-duration", "-1"),
    ];
    let steps = vec![
        (
            (Method::PUT, format!("{file}?resource=file"), none, &b""[..]),
            201,
            "",
        ),
        (
            (Method::POST, file.clone(), &infinite[..], &b""[..]),
            201,
            "",
        ),
    ];
    let id = header(&run(&client, steps).await, "x-ms-lease-id");
    let with_lease = [("x-ms-lease-id", id.as_str())];
    let json = [("accept", "application/json")];
    let again = [
        ("x-ms-lease-action", "acquire"),
        ("x-ms-lease-duration", "20"),
    ];
    let release = [
        ("x-ms-lease-action", "release"),
        ("x-ms-lease-id", id.as_str()),
    ];
    let steps = vec![
        (
            (Method::PATCH, append.clone(), none, &b"data"[..]),
            412,
            "LeaseIdMissing",
        ),
        (
            (Method::PATCH, append, &with_lease[..], &b"data"[..]),
            202,
            "",
        ),
        (
            (Method::DELETE, file.clone(), &json[..], &b""[..]),
            412,
            "LeaseIdMissing",
        ),
        (
            (Method::POST, file.clone(), &again[..], &b""[..]),
            409,
            "LeaseAlreadyPresent",
        ),
        (
            (Method::POST, file.clone(), &release[..], &b""[..]),
            200,
            "",
        ),
        ((Method::DELETE, file.clone(), &json[..], &b""[..]), 200, ""),
    ];
    run(&client, steps).await;
}
