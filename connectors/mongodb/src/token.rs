//! Resume tokens and cluster times.
//!
//! A change stream's position is its resume token. To order stream positions against the cluster
//! times that reads report (`operationTime`), we read the cluster time inside the token: mongod's
//! tokens are hex KeyStrings whose first value is the event's cluster time, encoded as the type byte
//! `0x82` (KeyString `kTimestamp`) followed by the 64-bit timestamp, big-endian
//! (mongod: src/mongo/db/pipeline/resume_token.cpp and src/mongo/db/storage/key_string.cpp).

use bson::{Bson, Document, Timestamp};
use mongodb::change_stream::event::ResumeToken;

/// A cluster time as one ordered number: seconds in the high half, increment in the low half.
pub fn ts_key(ts: Timestamp) -> u64 {
    (u64::from(ts.time) << 32) | u64::from(ts.increment)
}

/// The cluster time a key stands for.
pub fn ts_from_key(key: u64) -> Timestamp {
    Timestamp {
        time: (key >> 32) as u32,
        increment: key as u32,
    }
}

/// The token's `_data` string.
pub fn token_data(token: &ResumeToken) -> Option<String> {
    match bson::to_bson(token).ok()? {
        Bson::Document(d) => d.get_str("_data").ok().map(str::to_owned),
        _ => None,
    }
}

/// The cluster time at the start of a token's KeyString, as a [`ts_key`].
pub fn token_time(token: &ResumeToken) -> Option<u64> {
    let data = token_data(token)?;
    let hex = data.get(..18)?;
    if !hex[..2].eq_ignore_ascii_case("82") {
        return None;
    }
    u64::from_str_radix(&hex[2..], 16).ok()
}

/// A token from its `_data` string.
pub fn token_from_data(data: &str) -> Option<ResumeToken> {
    let mut doc = Document::new();
    doc.insert("_data", data);
    bson::from_bson(Bson::Document(doc)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_cluster_time_of_a_mongod_token() {
        // A token from mongod 7.0: cluster time Timestamp(1700000000, 5).
        let data = "826553F100000000052B022C0100296E5A1004";
        let token = token_from_data(data).unwrap();
        assert_eq!(token_data(&token).as_deref(), Some(data));
        let key = token_time(&token).unwrap();
        assert_eq!(
            ts_from_key(key),
            Timestamp {
                time: 1_700_000_000,
                increment: 5
            }
        );
        assert!(token_time(&token_from_data("ZZ").unwrap()).is_none());
    }
}
