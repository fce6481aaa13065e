//! The simulator driven over plain HTTP the way the writers known to work against OneLake in
//! production drive it — the MongoDB_Fabric_Mirroring app (`push_file_to_lz.py`: create, then
//! one `append&flush=true`, no `x-ms-version`) and Microsoft's open-mirroring Python SDK
//! (`OpenMirroringClient.rename_file`: the rename source as a full OneLake URL) — and through the
//! documented forms and answers of the ADLS Gen2 operations (Path - Create, Update, Lease, List,
//! Get Properties, Delete).

use onelake_sim::OneLakeSim;
use reqwest::{Client, Method, Response};

const LZ: &str = "ws/item.MountedRelationalDatabase/Files/LandingZone";

async fn send(
    client: &Client,
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: &'static [u8],
) -> Response {
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

async fn get(client: &Client, url: &str) -> (u16, Vec<u8>) {
    let r = send(client, Method::GET, url, &[], b"").await;
    (r.status().as_u16(), r.bytes().await.unwrap().to_vec())
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
    // The app sends no x-ms-version (requests.put(token_url, data={}, headers=...)).
    let r = send(
        &client,
        Method::PUT,
        &format!("{file}?resource=file"),
        &[("content-length", "0")],
        b"",
    )
    .await;
    assert_eq!(r.status(), 201);
    let r = send(
        &client,
        Method::PATCH,
        &format!("{file}?position=0&action=append&flush=true"),
        &[("x-ms-file-name", "00000000000000000001.parquet")],
        b"PAR1 data PAR1",
    )
    .await;
    assert_eq!(r.status(), 202, "append answers 202, flushed or not");
    assert_eq!(get(&client, &file).await, (200, b"PAR1 data PAR1".to_vec()));

    // Appending more at the end and flushing in the same call extends it.
    let r = send(
        &client,
        Method::PATCH,
        &format!("{file}?position=14&action=append&flush=true"),
        &[("x-ms-version", "2020-06-12")],
        b"+more",
    )
    .await;
    assert_eq!(r.status(), 202);
    assert_eq!(get(&client, &file).await.1, b"PAR1 data PAR1+more".to_vec());
    // A gap is refused and leaves the file as it was.
    let r = send(
        &client,
        Method::PATCH,
        &format!("{file}?position=100&action=append&flush=true"),
        &[],
        b"x",
    )
    .await;
    assert_eq!(
        (r.status().as_u16(), code(&r)),
        (400, "InvalidFlushPosition")
    );
    assert_eq!(get(&client, &file).await.1, b"PAR1 data PAR1+more".to_vec());
    // Without flush the data stays uncommitted until a flush at the new length.
    let r = send(
        &client,
        Method::PATCH,
        &format!("{file}?position=19&action=append"),
        &[],
        b"!",
    )
    .await;
    assert_eq!(r.status(), 202);
    assert_eq!(get(&client, &file).await.1.len(), 19);
    let r = send(
        &client,
        Method::PATCH,
        &format!("{file}?position=20&action=flush"),
        &[],
        b"",
    )
    .await;
    assert_eq!(r.status(), 200);
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
    let put = |name: &str| format!("{}/{folder}/{name}?resource=file", sim.endpoint());
    let host = sim.endpoint().trim_start_matches("http://").to_owned();
    let sources = [
        format!("https://onelake.dfs.fabric.microsoft.com/{folder}/_temp_1.parquet"),
        format!("http://{host}/{folder}/_temp_2.parquet"),
        format!("/{folder}/_temp_3.parquet"),
    ];
    for (i, source) in sources.iter().enumerate() {
        let n = i + 1;
        let temp = format!("_temp_{n}.parquet");
        assert_eq!(
            send(&client, Method::PUT, &put(&temp), &[], b"")
                .await
                .status(),
            201
        );
        let file = format!("{}/{folder}/{temp}", sim.endpoint());
        let r = send(
            &client,
            Method::PATCH,
            &format!("{file}?position=0&action=append&flush=true"),
            &[],
            b"contents",
        )
        .await;
        assert_eq!(r.status(), 202);
        let target = format!("{}/{folder}/{n:020}.parquet", sim.endpoint());
        let r = send(
            &client,
            Method::PUT,
            &target,
            &[
                ("x-ms-rename-source", source.as_str()),
                ("x-ms-version", "2020-06-12"),
            ],
            b"",
        )
        .await;
        assert_eq!(r.status(), 201, "rename from {source}: {}", code(&r));
        assert_eq!(get(&client, &target).await, (200, b"contents".to_vec()));
        assert_eq!(get(&client, &file).await.0, 404, "the source is gone");
    }
    // If-None-Match: * refuses to replace the published file, in either form.
    assert_eq!(
        send(&client, Method::PUT, &put("_temp_4.parquet"), &[], b"")
            .await
            .status(),
        201
    );
    let r = send(
        &client,
        Method::PUT,
        &format!("{}/{folder}/{:020}.parquet", sim.endpoint(), 1),
        &[
            (
                "x-ms-rename-source",
                &format!("https://onelake.dfs.fabric.microsoft.com/{folder}/_temp_4.parquet"),
            ),
            ("if-none-match", "*"),
        ],
        b"",
    )
    .await;
    assert_eq!((r.status().as_u16(), code(&r)), (409, "PathAlreadyExists"));
    let r = send(
        &client,
        Method::PUT,
        &format!("{}/{folder}/x.parquet", sim.endpoint()),
        &[(
            "x-ms-rename-source",
            &format!("https://storage.example.com/{folder}/_temp_4.parquet"),
        )],
        b"",
    )
    .await;
    assert_eq!((r.status().as_u16(), code(&r)), (400, "InvalidSourceUri"));
    let body: serde_json::Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
    assert_eq!(body["error"]["code"], "InvalidSourceUri");
    // A missing source, and a destination whose parent folder does not exist.
    let r = send(
        &client,
        Method::PUT,
        &format!("{}/{folder}/y.parquet", sim.endpoint()),
        &[("x-ms-rename-source", &format!("/{folder}/nothing.parquet"))],
        b"",
    )
    .await;
    assert_eq!((r.status().as_u16(), code(&r)), (404, "SourcePathNotFound"));
    let r = send(
        &client,
        Method::PUT,
        &format!("{}/{folder}/no/such/dir/y.parquet", sim.endpoint()),
        &[("x-ms-rename-source", &format!("/{folder}/_temp_4.parquet"))],
        b"",
    )
    .await;
    assert_eq!(
        (r.status().as_u16(), code(&r)),
        (404, "RenameDestinationParentPathNotFound")
    );
}

/// Requests the specification documents as invalid get its status and code, and valid optional
/// forms are accepted.
#[tokio::test]
async fn path_operations_answer_the_documented_errors() {
    let sim = OneLakeSim::start().await.unwrap();
    let client = Client::new();
    let base = format!("{}/{LZ}/t", sim.endpoint());
    let file = format!("{base}/f.bin");
    assert_eq!(
        send(
            &client,
            Method::PUT,
            &format!("{file}?resource=file"),
            &[
                ("x-ms-properties", "source=bW9uZ28="),
                ("x-ms-owner", "someone"),
            ],
            b""
        )
        .await
        .headers()
        .get("x-ms-rejected-headers")
        .map(|v| v.to_str().unwrap().to_owned()),
        Some("x-ms-owner".to_owned()),
        "OneLake ignores ownership headers and says so"
    );
    let r = send(
        &client,
        Method::PATCH,
        &format!("{file}?action=append"),
        &[],
        b"abc",
    )
    .await;
    assert_eq!(
        (r.status().as_u16(), code(&r)),
        (400, "MissingRequiredQueryParameter")
    );
    let r = send(
        &client,
        Method::PATCH,
        &format!("{file}?action=append&position=0"),
        &[("x-ms-version", "2099-01-01")],
        b"abc",
    )
    .await;
    assert_eq!((r.status().as_u16(), code(&r)), (400, "InvalidHeaderValue"));
    let r = send(
        &client,
        Method::PATCH,
        &format!("{file}?action=append&position=0"),
        &[("x-ms-version", "2023-11-03")],
        b"abc",
    )
    .await;
    assert_eq!(r.status(), 202);
    assert_eq!(r.headers()["x-ms-version"], "2023-11-03");
    let r = send(
        &client,
        Method::PATCH,
        &format!("{file}?action=flush&position=3"),
        &[],
        b"x",
    )
    .await;
    assert_eq!(
        (r.status().as_u16(), code(&r)),
        (400, "ContentLengthMustBeZero")
    );
    let r = send(
        &client,
        Method::PATCH,
        &format!("{file}?action=flush&position=3&close=true&retainUncommittedData=false"),
        &[("x-ms-content-type", "application/vnd.apache.parquet")],
        b"",
    )
    .await;
    assert_eq!(r.status(), 200);
    // Path - Get Properties: user properties come back as x-ms-properties.
    let r = send(
        &client,
        Method::HEAD,
        &format!("{file}?action=getStatus"),
        &[("accept", "application/json")],
        b"",
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["content-type"],
        "application/vnd.apache.parquet"
    );
    assert_eq!(r.headers()["x-ms-properties"], "source=bW9uZ28=");
    assert_eq!(r.headers()["content-length"], "3");
    // Range past the end: 416.
    let r = send(
        &client,
        Method::GET,
        &file,
        &[("range", "bytes=10-20")],
        b"",
    )
    .await;
    assert_eq!((r.status().as_u16(), code(&r)), (416, "InvalidRange"));
    // OneLake blocks setting access control.
    let r = send(
        &client,
        Method::PATCH,
        &format!("{file}?action=setAccessControl"),
        &[("x-ms-acl", "user::rwx")],
        b"",
    )
    .await;
    assert_eq!(r.status(), 400);
    // List Paths needs `recursive`; a missing directory is 404; pages follow x-ms-continuation.
    let list = format!("{}/ws?resource=filesystem", sim.endpoint());
    let r = send(&client, Method::GET, &list, &[], b"").await;
    assert_eq!(
        (r.status().as_u16(), code(&r)),
        (400, "MissingRequiredQueryParameter")
    );
    let r = send(
        &client,
        Method::GET,
        &format!("{list}&recursive=false&directory=nope"),
        &[],
        b"",
    )
    .await;
    assert_eq!((r.status().as_u16(), code(&r)), (404, "PathNotFound"));
    for name in ["a", "b", "c", "d", "e"] {
        send(
            &client,
            Method::PUT,
            &format!("{base}/{name}?resource=file"),
            &[],
            b"",
        )
        .await;
    }
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
        let r = send(&client, Method::GET, &url, &[], b"").await;
        assert_eq!(r.status(), 200);
        continuation = r
            .headers()
            .get("x-ms-continuation")
            .map(|v| v.to_str().unwrap().to_owned());
        let body: serde_json::Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
        let page = body["paths"].as_array().unwrap();
        assert!(page.len() <= 2);
        names.extend(page.iter().map(|p| {
            p["name"]
                .as_str()
                .unwrap()
                .rsplit('/')
                .next()
                .unwrap()
                .to_owned()
        }));
        pages += 1;
        if continuation.is_none() {
            break;
        }
    }
    assert_eq!(names, ["a", "b", "c", "d", "e", "f.bin"]);
    assert_eq!(pages, 3);
    // Path - Delete of a non-empty directory needs recursive=true.
    let r = send(
        &client,
        Method::DELETE,
        &format!("{base}?recursive=false"),
        &[],
        b"",
    )
    .await;
    assert_eq!((r.status().as_u16(), code(&r)), (409, "DirectoryNotEmpty"));
    let r = send(
        &client,
        Method::DELETE,
        &format!("{base}?recursive=true"),
        &[],
        b"",
    )
    .await;
    assert_eq!(r.status(), 200);
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
    send(
        &client,
        Method::PUT,
        &format!("{file}?resource=file"),
        &[],
        b"",
    )
    .await;
    let r = send(
        &client,
        Method::POST,
        &file,
        &[
            ("x-ms-lease-action", "acquire"),
            ("x-ms-lease-duration", "-1"),
        ],
        b"",
    )
    .await;
    assert_eq!(r.status(), 201);
    let id = r.headers()["x-ms-lease-id"].to_str().unwrap().to_owned();
    let r = send(
        &client,
        Method::PATCH,
        &format!("{file}?action=append&position=0&flush=true"),
        &[],
        b"data",
    )
    .await;
    assert_eq!((r.status().as_u16(), code(&r)), (412, "LeaseIdMissing"));
    let r = send(
        &client,
        Method::PATCH,
        &format!("{file}?action=append&position=0&flush=true"),
        &[("x-ms-lease-id", &id)],
        b"data",
    )
    .await;
    assert_eq!(r.status(), 202);
    let r = send(
        &client,
        Method::DELETE,
        &file,
        &[("accept", "application/json")],
        b"",
    )
    .await;
    assert_eq!((r.status().as_u16(), code(&r)), (412, "LeaseIdMissing"));
    let r = send(
        &client,
        Method::POST,
        &file,
        &[
            ("x-ms-lease-action", "acquire"),
            ("x-ms-lease-duration", "20"),
        ],
        b"",
    )
    .await;
    assert_eq!(
        (r.status().as_u16(), code(&r)),
        (409, "LeaseAlreadyPresent")
    );
    let r = send(
        &client,
        Method::POST,
        &file,
        &[("x-ms-lease-action", "release"), ("x-ms-lease-id", &id)],
        b"",
    )
    .await;
    assert_eq!(r.status(), 200);
    let r = send(
        &client,
        Method::DELETE,
        &file,
        &[("accept", "application/json")],
        b"",
    )
    .await;
    assert_eq!(r.status(), 200);
}
