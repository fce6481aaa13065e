//! The server side of SCRAM-SHA-256 (RFC 5802 with the SHA-256 of RFC 7677), as mongod runs it
//! over `saslStart` / `saslContinue`.
//!
//! mongod stores, per user, a salt, an iteration count (`scramSHA256IterationCount`, default
//! 15000), `StoredKey` and `ServerKey`, computed from the SASLprep'ed password (RFC 4013; mongod
//! applies SASLprep for SCRAM-SHA-256 but not for SCRAM-SHA-1). The conversation:
//!
//! 1. client-first `n,,n=<user>,r=<client nonce>`; server-first `r=<client nonce><server
//!    nonce>,s=<salt>,i=<iterations>`;
//! 2. client-final `c=biws,r=<nonce>,p=<proof>`; the server checks the proof against `StoredKey`
//!    and answers server-final `v=<server signature>`, `done: true` when the client asked to
//!    `skipEmptyExchange` (drivers since 4.4 do), else `done: false` and
//! 3. an empty client message, answered with `done: true`.
//!
//! Any failure is reported to the client as `AuthenticationFailed` (18), "Authentication
//! failed." (`sasl_commands.cpp`: "All the client needs to know is that authentication has
//! failed").

use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

/// mongod's default `scramSHA256IterationCount`.
pub const ITERATIONS: u32 = 15_000;

/// What mongod keeps of a SCRAM-SHA-256 password.
#[derive(Clone, Debug)]
pub struct Credentials {
    salt: Vec<u8>,
    iterations: u32,
    stored_key: Vec<u8>,
    server_key: Vec<u8>,
}

impl Credentials {
    /// Derives the stored credentials of `password` with a fresh salt.
    pub fn new(password: &str) -> Credentials {
        let salt: [u8; 28] = rand::random();
        let prepared = stringprep::saslprep(password)
            .map(|p| p.into_owned())
            .unwrap_or_else(|_| password.to_owned());
        let salted =
            pbkdf2::pbkdf2_hmac_array::<Sha256, 32>(prepared.as_bytes(), &salt, ITERATIONS);
        let client_key = hmac(&salted, b"Client Key");
        Credentials {
            salt: salt.to_vec(),
            iterations: ITERATIONS,
            stored_key: Sha256::digest(&client_key).to_vec(),
            server_key: hmac(&salted, b"Server Key"),
        }
    }
}

fn hmac(key: &[u8], message: &[u8]) -> Vec<u8> {
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(message);
    mac.finalize().into_bytes().to_vec()
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

/// Why a step failed (logged by mongod, never told to the client).
#[derive(Debug)]
pub struct ScramError(pub String);

/// A conversation after its first step.
#[derive(Clone, Debug)]
pub struct Conversation {
    /// The user being authenticated (as sent, `=2C`/`=3D` decoded).
    pub user: String,
    client_first_bare: String,
    server_first: String,
    nonce: String,
    /// Whether the client asked for the final empty round trip to be skipped.
    pub skip_empty_exchange: bool,
    /// The proof checked: only the empty message may follow.
    proved: bool,
}

/// The user name in a client-first message, before the credentials are looked up.
pub fn client_first_user(payload: &[u8]) -> Result<String, ScramError> {
    let (_, bare) = split_client_first(payload)?;
    user_of(&bare)
}

fn split_client_first(payload: &[u8]) -> Result<(String, String), ScramError> {
    let text =
        std::str::from_utf8(payload).map_err(|_| ScramError("client-first is not UTF-8".into()))?;
    // gs2-header: no channel binding (`n`), no authzid.
    let bare = text
        .strip_prefix("n,,")
        .ok_or_else(|| ScramError(format!("unsupported gs2 header in {text:?}")))?;
    Ok(("n,,".to_owned(), bare.to_owned()))
}

fn user_of(bare: &str) -> Result<String, ScramError> {
    let user = bare
        .split(',')
        .find_map(|a| a.strip_prefix("n="))
        .ok_or_else(|| ScramError("client-first lacks n=".into()))?;
    Ok(user.replace("=2C", ",").replace("=3D", "="))
}

/// Step 1: the server-first message for `payload`, given the user's stored credentials.
pub fn start(
    payload: &[u8],
    credentials: &Credentials,
    skip_empty_exchange: bool,
) -> Result<(Conversation, Vec<u8>), ScramError> {
    let (_, bare) = split_client_first(payload)?;
    let user = user_of(&bare)?;
    let client_nonce = bare
        .split(',')
        .find_map(|a| a.strip_prefix("r="))
        .ok_or_else(|| ScramError("client-first lacks r=".into()))?;
    let server_nonce = b64().encode(rand::random::<[u8; 24]>());
    let nonce = format!("{client_nonce}{server_nonce}");
    let server_first = format!(
        "r={nonce},s={},i={}",
        b64().encode(&credentials.salt),
        credentials.iterations
    );
    let reply = server_first.clone().into_bytes();
    Ok((
        Conversation {
            user,
            client_first_bare: bare,
            server_first,
            nonce,
            skip_empty_exchange,
            proved: false,
        },
        reply,
    ))
}

/// Steps 2 and 3: the next server message, and whether the conversation is done.
pub fn step(
    conversation: &mut Conversation,
    payload: &[u8],
    credentials: &Credentials,
) -> Result<(Vec<u8>, bool), ScramError> {
    if conversation.proved {
        return if payload.is_empty() {
            Ok((Vec::new(), true))
        } else {
            Err(ScramError(
                "unexpected message after the server-final".into(),
            ))
        };
    }
    let text =
        std::str::from_utf8(payload).map_err(|_| ScramError("client-final is not UTF-8".into()))?;
    let (without_proof, proof) = text
        .rsplit_once(",p=")
        .ok_or_else(|| ScramError("client-final lacks p=".into()))?;
    let mut channel_binding = None;
    let mut nonce = None;
    for attribute in without_proof.split(',') {
        if let Some(c) = attribute.strip_prefix("c=") {
            channel_binding = Some(c);
        } else if let Some(r) = attribute.strip_prefix("r=") {
            nonce = Some(r);
        }
    }
    // `biws` is base64 of the gs2 header `n,,`.
    if channel_binding != Some("biws") {
        return Err(ScramError("channel binding does not match".into()));
    }
    if nonce != Some(conversation.nonce.as_str()) {
        return Err(ScramError("nonce does not match".into()));
    }
    let proof = b64()
        .decode(proof)
        .map_err(|_| ScramError("proof is not base64".into()))?;
    let auth_message = format!(
        "{},{},{}",
        conversation.client_first_bare, conversation.server_first, without_proof
    );
    let client_signature = hmac(&credentials.stored_key, auth_message.as_bytes());
    if proof.len() != client_signature.len() {
        return Err(ScramError("proof has the wrong length".into()));
    }
    let client_key: Vec<u8> = proof
        .iter()
        .zip(&client_signature)
        .map(|(p, s)| p ^ s)
        .collect();
    if Sha256::digest(&client_key).as_slice() != credentials.stored_key.as_slice() {
        return Err(ScramError("wrong password".into()));
    }
    conversation.proved = true;
    let server_signature = hmac(&credentials.server_key, auth_message.as_bytes());
    let reply = format!("v={}", b64().encode(server_signature)).into_bytes();
    Ok((reply, conversation.skip_empty_exchange))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The client side, as RFC 5802 section 3 defines it.
    fn client_final(
        password: &str,
        client_first_bare: &str,
        server_first: &str,
    ) -> (String, Vec<u8>) {
        let parts: Vec<&str> = server_first.split(',').collect();
        let nonce = parts[0].strip_prefix("r=").unwrap();
        let salt = b64().decode(parts[1].strip_prefix("s=").unwrap()).unwrap();
        let i: u32 = parts[2].strip_prefix("i=").unwrap().parse().unwrap();
        let salted = pbkdf2::pbkdf2_hmac_array::<Sha256, 32>(password.as_bytes(), &salt, i);
        let client_key = hmac(&salted, b"Client Key");
        let stored_key = Sha256::digest(&client_key);
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("{client_first_bare},{server_first},{without_proof}");
        let signature = hmac(&stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&signature)
            .map(|(k, s)| k ^ s)
            .collect();
        let server_key = hmac(&salted, b"Server Key");
        (
            format!("{without_proof},p={}", b64().encode(proof)),
            hmac(&server_key, auth_message.as_bytes()),
        )
    }

    #[test]
    fn the_right_password_is_accepted_and_a_wrong_one_refused() {
        let credentials = Credentials::new("pencil");
        let first = b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
        for (password, ok) in [("pencil", true), ("pencl", false)] {
            let (mut conversation, server_first) = start(first, &credentials, true).unwrap();
            let server_first = String::from_utf8(server_first).unwrap();
            assert!(server_first.starts_with("r=rOprNGfwEbeRWgbNEkqO"));
            let (message, signature) =
                client_final(password, "n=user,r=rOprNGfwEbeRWgbNEkqO", &server_first);
            match step(&mut conversation, message.as_bytes(), &credentials) {
                Ok((reply, done)) => {
                    assert!(ok);
                    assert!(done);
                    assert_eq!(reply, format!("v={}", b64().encode(signature)).into_bytes());
                }
                Err(e) => assert!(!ok, "{e:?}"),
            }
        }
    }
}
