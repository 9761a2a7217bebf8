//! Queries in, replies out: the checks a query must pass, the reply's header, UDP size
//! limits and truncation, and how long an upstream answer may be served from the cache.

use hickory_proto::op::{Edns, Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::{RData, Record};

use crate::zone::Answer;

/// The largest UDP reply the server sends to a client that advertises more (EDNS): the
/// size the DNS flag day of 2020 settled on, which avoids fragmentation.
pub const MAX_UDP: u16 = 1232;
/// The UDP reply limit without EDNS.
pub const MIN_UDP: u16 = 512;
/// The longest an upstream answer is kept in the cache, whatever its TTLs say (seconds).
pub const MAX_CACHE_SECONDS: u32 = 86400;

/// A query that cannot be answered normally: the error reply to send (`None`: too short to
/// have an id, dropped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal(pub Option<Vec<u8>>);

fn error_reply(id: u16, op: OpCode, rcode: ResponseCode) -> Option<Vec<u8>> {
    Message::error_msg(id, op, rcode).to_vec().ok()
}

/// Reads a query: one question, opcode QUERY, not a response. Anything else is refused
/// with FORMERR or NOTIMP when the header can be read.
pub fn parse_query(buf: &[u8]) -> Result<Message, Refusal> {
    let id = (buf.len() >= 2).then(|| u16::from_be_bytes([buf[0], buf[1]]));
    let Ok(m) = Message::from_vec(buf) else {
        return Err(Refusal(id.and_then(|id| {
            error_reply(id, OpCode::Query, ResponseCode::FormErr)
        })));
    };
    let id = m.metadata.id;
    if m.metadata.message_type != MessageType::Query {
        // never answer a response (no reflection loops)
        return Err(Refusal(None));
    }
    if m.metadata.op_code != OpCode::Query {
        return Err(Refusal(error_reply(
            id,
            m.metadata.op_code,
            ResponseCode::NotImp,
        )));
    }
    if m.queries.len() != 1 {
        return Err(Refusal(error_reply(
            id,
            OpCode::Query,
            ResponseCode::FormErr,
        )));
    }
    Ok(m)
}

/// The reply skeleton for `query`: its id, question and RD flag, recursion available, an
/// EDNS record when the query had one.
pub fn reply_to(query: &Message) -> Message {
    let mut r = Message::response(query.metadata.id, OpCode::Query);
    r.metadata.recursion_desired = query.metadata.recursion_desired;
    r.metadata.recursion_available = true;
    r.queries = query.queries.clone();
    if query.edns.is_some() {
        let mut e = Edns::new();
        e.set_max_payload(MAX_UDP);
        r.set_edns(e);
    }
    r
}

/// The reply carrying the zone's `answer`.
pub fn from_answer(query: &Message, answer: &Answer) -> Message {
    let mut r = reply_to(query);
    r.metadata.authoritative = true;
    r.metadata.response_code = answer.rcode;
    r.answers = answer.answers.clone();
    r.authorities = answer.authorities.clone();
    r.additionals = answer.additionals.clone();
    r
}

/// An upstream `answer` as the reply to `query` (its id and flags).
pub fn relay(query: &Message, answer: &Message) -> Message {
    let mut r = reply_to(query);
    r.metadata.response_code = answer.metadata.response_code;
    r.metadata.authoritative = false;
    r.metadata.authentic_data = answer.metadata.authentic_data;
    r.answers = answer.answers.clone();
    r.authorities = answer.authorities.clone();
    r.additionals = answer.additionals.clone();
    r
}

/// A reply with only a response code (SERVFAIL when no upstream answered).
pub fn failure(query: &Message, rcode: ResponseCode) -> Message {
    let mut r = reply_to(query);
    r.metadata.response_code = rcode;
    r
}

/// The size limit of a UDP reply to `query`.
pub fn udp_limit(query: &Message) -> usize {
    usize::from(
        query
            .edns
            .as_ref()
            .map_or(MIN_UDP, |e| e.max_payload().clamp(MIN_UDP, MAX_UDP)),
    )
}

/// `msg` encoded; over `limit` bytes, the truncated reply (TC set, the question only).
pub fn encode(msg: &Message, limit: usize) -> Option<Vec<u8>> {
    let bytes = msg.to_vec().ok()?;
    if bytes.len() <= limit {
        return Some(bytes);
    }
    let mut t = msg.truncate();
    t.metadata.id = msg.metadata.id;
    t.metadata.message_type = MessageType::Response;
    t.to_vec().ok()
}

/// How long an upstream answer may be served from the cache: the smallest TTL of its
/// records (answers, or the SOA of a negative answer, at most its `minimum`), capped at
/// [`MAX_CACHE_SECONDS`]; `None` for failures and for negative answers without an SOA.
pub fn cache_seconds(msg: &Message) -> Option<u32> {
    let ttl = match msg.metadata.response_code {
        ResponseCode::NoError if !msg.answers.is_empty() => {
            msg.answers.iter().map(|r| r.ttl).min()?
        }
        ResponseCode::NoError | ResponseCode::NXDomain => msg
            .authorities
            .iter()
            .filter_map(|r| match &r.data {
                RData::SOA(soa) => Some(r.ttl.min(soa.minimum)),
                _ => None,
            })
            .min()?,
        _ => return None,
    };
    Some(ttl.min(MAX_CACHE_SECONDS))
}

fn age(records: &mut [Record], secs: u32) {
    for r in records {
        r.ttl = r.ttl.saturating_sub(secs);
    }
}

/// `msg` after `secs` seconds in the cache: every TTL lowered by that much.
pub fn aged(msg: &Message, secs: u32) -> Message {
    let mut m = msg.clone();
    age(&mut m.answers, secs);
    age(&mut m.authorities, secs);
    age(&mut m.additionals, secs);
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::Query;
    use hickory_proto::rr::rdata::{A, SOA};
    use hickory_proto::rr::{Name, RecordType};

    fn query(name: &str) -> Message {
        let mut m = Message::query();
        m.metadata.recursion_desired = true;
        m.add_query(Query::query(Name::from_ascii(name).unwrap(), RecordType::A));
        m
    }

    fn a(name: &str, ttl: u32, ip: [u8; 4]) -> Record {
        Record::from_rdata(Name::from_ascii(name).unwrap(), ttl, RData::A(A(ip.into())))
    }

    fn soa(ttl: u32, minimum: u32) -> Record {
        let n = Name::from_ascii("example.com.").unwrap();
        Record::from_rdata(
            n.clone(),
            ttl,
            RData::SOA(SOA::new(n.clone(), n, 1, 1, 1, 1, minimum)),
        )
    }

    #[test]
    fn malformed_queries_get_formerr_or_nothing() {
        assert_eq!(parse_query(&[]), Err(Refusal(None)));
        assert_eq!(parse_query(&[1]), Err(Refusal(None)));
        // a header and garbage: FORMERR with the id
        let Err(Refusal(Some(r))) = parse_query(&[0xab, 0xcd, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 9])
        else {
            panic!("garbage accepted")
        };
        let r = Message::from_vec(&r).unwrap();
        assert_eq!(r.metadata.id, 0xabcd);
        assert_eq!(r.metadata.response_code, ResponseCode::FormErr);
        // two questions
        let mut q = query("a.example.");
        q.add_query(Query::query(Name::from_ascii("b.").unwrap(), RecordType::A));
        let Err(Refusal(Some(r))) = parse_query(&q.to_vec().unwrap()) else {
            panic!("two questions accepted")
        };
        assert_eq!(
            Message::from_vec(&r).unwrap().metadata.response_code,
            ResponseCode::FormErr
        );
        // a response is never answered
        let resp = reply_to(&query("a.example."));
        assert_eq!(parse_query(&resp.to_vec().unwrap()), Err(Refusal(None)));
        // every prefix of a valid query is refused without a panic
        let ok = query("www.example.com.").to_vec().unwrap();
        for n in 0..ok.len() {
            assert!(parse_query(&ok[..n]).is_err(), "{n} bytes");
        }
        assert!(parse_query(&ok).is_ok());
    }

    #[test]
    fn replies_keep_id_question_and_rd() {
        let q = query("x.example.");
        let r = reply_to(&q);
        assert_eq!(r.metadata.id, q.metadata.id);
        assert!(r.metadata.recursion_desired && r.metadata.recursion_available);
        assert_eq!(r.metadata.message_type, MessageType::Response);
        assert_eq!(r.queries, q.queries);
        assert!(r.edns.is_none());
    }

    #[test]
    fn truncation_over_the_limit() {
        let q = query("big.example.");
        let mut r = reply_to(&q);
        for i in 0..60u8 {
            r.add_answer(a("big.example.", 60, [10, 0, 0, i]));
        }
        assert_eq!(udp_limit(&q), 512);
        let bytes = encode(&r, udp_limit(&q)).unwrap();
        assert!(bytes.len() <= 512);
        let t = Message::from_vec(&bytes).unwrap();
        assert!(t.metadata.truncation);
        assert_eq!(t.metadata.id, q.metadata.id);
        assert_eq!(t.queries, q.queries);
        let full = Message::from_vec(&encode(&r, 65535).unwrap()).unwrap();
        assert_eq!(full.answers.len(), 60);
    }

    #[test]
    fn cache_lifetimes() {
        let q = query("x.example.");
        let mut r = reply_to(&q);
        r.add_answer(a("x.example.", 30, [1, 2, 3, 4]));
        r.add_answer(a("x.example.", 7, [1, 2, 3, 5]));
        assert_eq!(cache_seconds(&r), Some(7));
        let old = aged(&r, 5);
        assert_eq!(
            old.answers.iter().map(|r| r.ttl).collect::<Vec<_>>(),
            [25, 2]
        );
        let mut nx = failure(&q, ResponseCode::NXDomain);
        assert_eq!(cache_seconds(&nx), None);
        nx.add_authority(soa(300, 60));
        assert_eq!(cache_seconds(&nx), Some(60));
        let mut nodata = failure(&q, ResponseCode::NoError);
        nodata.add_authority(soa(20, 60));
        assert_eq!(cache_seconds(&nodata), Some(20));
        assert_eq!(cache_seconds(&failure(&q, ResponseCode::ServFail)), None);
        let mut long = reply_to(&q);
        long.add_answer(a("x.example.", u32::MAX, [1, 2, 3, 4]));
        assert_eq!(cache_seconds(&long), Some(MAX_CACHE_SECONDS));
    }
}
