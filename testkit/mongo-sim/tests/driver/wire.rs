//! Raw wire-level checks: legacy OP_QUERY handshake answered with OP_REPLY, other OP_QUERY
//! commands refused as mongod 6.0+ does, exhaust hello streaming with moreToCome.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use bson::{doc, Document};

fn op_query(stream: &mut TcpStream, request_id: i32, cmd: &Document) {
    let q = bson::to_vec(cmd).expect("bson");
    let mut body = Vec::new();
    body.extend_from_slice(&0i32.to_le_bytes());
    body.extend_from_slice(b"admin.$cmd\0");
    body.extend_from_slice(&0i32.to_le_bytes());
    body.extend_from_slice(&(-1i32).to_le_bytes());
    body.extend_from_slice(&q);
    let mut msg = Vec::new();
    msg.extend_from_slice(&((16 + body.len()) as i32).to_le_bytes());
    msg.extend_from_slice(&request_id.to_le_bytes());
    msg.extend_from_slice(&0i32.to_le_bytes());
    msg.extend_from_slice(&2004i32.to_le_bytes());
    msg.extend_from_slice(&body);
    stream.write_all(&msg).expect("write");
}

fn op_msg(stream: &mut TcpStream, request_id: i32, flags: u32, cmd: &Document) {
    let q = bson::to_vec(cmd).expect("bson");
    let mut msg = Vec::new();
    msg.extend_from_slice(&((21 + q.len()) as i32).to_le_bytes());
    msg.extend_from_slice(&request_id.to_le_bytes());
    msg.extend_from_slice(&0i32.to_le_bytes());
    msg.extend_from_slice(&2013i32.to_le_bytes());
    msg.extend_from_slice(&flags.to_le_bytes());
    msg.push(0);
    msg.extend_from_slice(&q);
    stream.write_all(&msg).expect("write");
}

/// Reads one reply: (opcode, responseTo, flags, document).
fn read_reply(stream: &mut TcpStream) -> (i32, i32, u32, Document) {
    let mut header = [0u8; 16];
    stream.read_exact(&mut header).expect("header");
    let len = i32::from_le_bytes(header[0..4].try_into().expect("4")) as usize;
    let response_to = i32::from_le_bytes(header[8..12].try_into().expect("4"));
    let op = i32::from_le_bytes(header[12..16].try_into().expect("4"));
    let mut rest = vec![0u8; len - 16];
    stream.read_exact(&mut rest).expect("body");
    match op {
        1 => (
            op,
            response_to,
            0,
            bson::from_slice(&rest[20..]).expect("doc"),
        ),
        2013 => {
            let flags = u32::from_le_bytes(rest[0..4].try_into().expect("4"));
            assert_eq!(rest[4], 0, "kind-0 section");
            (
                op,
                response_to,
                flags,
                bson::from_slice(&rest[5..]).expect("doc"),
            )
        }
        other => panic!("unexpected opcode {other}"),
    }
}

#[tokio::test]
async fn legacy_op_query_handshake_and_exhaust_hello() {
    let (sim, _client) = crate::start().await;
    let addr = sim.addr();
    let handle = tokio::task::spawn_blocking(move || {
        let mut s = TcpStream::connect(addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        op_query(
            &mut s,
            7,
            &doc! {"isMaster": 1, "helloOk": true, "client": {"application": {"name": "raw"}}},
        );
        let (op, to, _, reply) = read_reply(&mut s);
        assert_eq!((op, to), (1, 7), "OP_REPLY answering request 7");
        assert_eq!(reply.get_bool("ismaster").ok(), Some(true));
        assert_eq!(reply.get_bool("helloOk").ok(), Some(true));
        assert!(
            reply.get_i32("maxBsonObjectSize").is_ok()
                && reply.get_i32("maxMessageSizeBytes").is_ok()
        );
        op_query(&mut s, 8, &doc! {"find": "x", "$db": "admin"});
        let (_, _, _, reply) = read_reply(&mut s);
        assert_eq!(reply.get_i32("code").ok(), Some(352), "{reply}");
        // Awaitable hello with exhaustAllowed: replies stream with moreToCome.
        let tv = reply_tv(&mut s);
        op_msg(
            &mut s,
            9,
            1 << 16,
            &doc! {"hello": 1, "topologyVersion": tv, "maxAwaitTimeMS": 100i64, "$db": "admin"},
        );
        let t = std::time::Instant::now();
        let (_, to1, flags1, _) = read_reply(&mut s);
        assert!(
            t.elapsed() >= Duration::from_millis(90),
            "held until maxAwaitTimeMS"
        );
        assert_eq!(to1, 9);
        assert_ne!(flags1 & 2, 0, "moreToCome");
        let (_, _, flags2, r2) = read_reply(&mut s);
        assert_ne!(flags2 & 2, 0, "still streaming");
        assert_eq!(r2.get_bool("isWritablePrimary").ok(), Some(true));
    });
    handle.await.expect("raw client");
    sim.shutdown().await;
}

fn reply_tv(s: &mut TcpStream) -> Document {
    op_msg(s, 1, 0, &doc! {"hello": 1, "$db": "admin"});
    let (_, _, flags, reply) = read_reply(s);
    assert_eq!(flags & 2, 0, "a plain hello does not stream");
    reply
        .get_document("topologyVersion")
        .expect("topologyVersion")
        .clone()
}
