//! Netlink framing shared by nf_tables and ctnetlink (and any other nfnetlink subsystem):
//! message headers with their `nfgenmsg`, attributes (TLVs) built and parsed, nested ones
//! included. No I/O here: [`crate::sock`] sends and receives what this module frames.

use crate::uapi::{
    NFGENMSG_LEN, NLA_F_NESTED, NLA_TYPE_MASK, NLMSGERR_ATTR_MSG, NLMSG_ERROR, NLMSG_HDRLEN,
    NLM_F_ACK_TLVS, NLM_F_CAPPED,
};

/// Aligns `n` to the 4-byte netlink boundary.
pub const fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// Builds attributes (`struct nlattr` TLVs) into a buffer, nested ones included.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct AttrWriter {
    buf: Vec<u8>,
}

impl AttrWriter {
    /// An empty buffer.
    pub fn new() -> Self {
        Self::default()
    }

    /// One attribute; the payload is padded to 4 bytes (the length field excludes padding).
    pub fn put(&mut self, ty: u16, data: &[u8]) {
        let len = 4 + data.len();
        // Attribute payloads are bounded by the callers (names, keys, userdata ≤ 256 bytes).
        let len16 = u16::try_from(len).unwrap_or(u16::MAX);
        self.buf.extend_from_slice(&len16.to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf.extend_from_slice(data);
        self.pad();
    }

    /// A one-byte value (ctnetlink protocol numbers).
    pub fn put_u8(&mut self, ty: u16, v: u8) {
        self.put(ty, &[v]);
    }

    /// A big-endian 16-bit value (ports in ctnetlink).
    pub fn put_be16(&mut self, ty: u16, v: u16) {
        self.put(ty, &v.to_be_bytes());
    }

    /// A big-endian 32-bit value (every `NLA_U32` of nf_tables is `__be32`).
    pub fn put_be32(&mut self, ty: u16, v: u32) {
        self.put(ty, &v.to_be_bytes());
    }

    /// A big-endian 64-bit value (handles).
    pub fn put_be64(&mut self, ty: u16, v: u64) {
        self.put(ty, &v.to_be_bytes());
    }

    /// A NUL-terminated string (`NLA_STRING` as nft sends it).
    pub fn put_strz(&mut self, ty: u16, s: &str) {
        let mut v = Vec::with_capacity(s.len() + 1);
        v.extend_from_slice(s.as_bytes());
        v.push(0);
        self.put(ty, &v);
    }

    /// A nested attribute (flagged `NLA_F_NESTED`, as libnftnl does) filled by `f`.
    pub fn nest(&mut self, ty: u16, f: impl FnOnce(&mut AttrWriter)) {
        let start = self.buf.len();
        self.buf.extend_from_slice(&[0, 0]);
        self.buf
            .extend_from_slice(&(ty | NLA_F_NESTED).to_ne_bytes());
        f(self);
        let len = u16::try_from(self.buf.len() - start).unwrap_or(u16::MAX);
        self.buf[start..start + 2].copy_from_slice(&len.to_ne_bytes());
    }

    fn pad(&mut self) {
        while !self.buf.len().is_multiple_of(4) {
            self.buf.push(0);
        }
    }

    /// The attributes built.
    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }
}

/// Bytes [`push_msg`] appends for `attrs_len` bytes of attributes (padding included).
pub const fn msg_len(attrs_len: usize) -> usize {
    align4(NLMSG_HDRLEN + NFGENMSG_LEN + attrs_len)
}

/// Appends one nfnetlink message (`nlmsghdr` + `nfgenmsg` + attributes) to `out`.
pub fn push_msg(
    out: &mut Vec<u8>,
    ty: u16,
    flags: u16,
    seq: u32,
    family: u8,
    res_id: u16,
    attrs: &[u8],
) {
    let len = NLMSG_HDRLEN + NFGENMSG_LEN + attrs.len();
    let len32 = u32::try_from(len).unwrap_or(u32::MAX);
    out.extend_from_slice(&len32.to_ne_bytes());
    out.extend_from_slice(&ty.to_ne_bytes());
    out.extend_from_slice(&flags.to_ne_bytes());
    out.extend_from_slice(&seq.to_ne_bytes());
    out.extend_from_slice(&0u32.to_ne_bytes());
    out.push(family);
    out.push(0); // NFNETLINK_V0
    out.extend_from_slice(&res_id.to_be_bytes());
    out.extend_from_slice(attrs);
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
}

/// One attribute of a received message.
#[derive(Debug, Clone, Copy)]
pub struct Attr<'a> {
    /// The type without the nested/byte-order flags.
    pub ty: u16,
    /// The payload, without padding.
    pub data: &'a [u8],
}

impl<'a> Attr<'a> {
    /// A big-endian 32-bit value.
    pub fn be32(&self) -> Option<u32> {
        Some(u32::from_be_bytes(self.data.get(..4)?.try_into().ok()?))
    }

    /// A big-endian 64-bit value.
    pub fn be64(&self) -> Option<u64> {
        Some(u64::from_be_bytes(self.data.get(..8)?.try_into().ok()?))
    }

    /// A big-endian 16-bit value.
    pub fn be16(&self) -> Option<u16> {
        Some(u16::from_be_bytes(self.data.get(..2)?.try_into().ok()?))
    }

    /// A one-byte value.
    pub fn u8(&self) -> Option<u8> {
        self.data.first().copied()
    }

    /// The string without its NUL terminator (lossy for non-UTF-8 names).
    pub fn string(&self) -> String {
        let end = self
            .data
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(self.data.len());
        String::from_utf8_lossy(&self.data[..end]).into_owned()
    }

    /// The attributes nested in this one.
    pub fn nested(&self) -> Attrs<'a> {
        Attrs::new(self.data)
    }
}

/// Iterates over the attributes in a buffer; stops at the first malformed one.
#[derive(Debug, Clone)]
pub struct Attrs<'a> {
    rest: &'a [u8],
}

impl<'a> Attrs<'a> {
    /// The attributes in `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Attrs { rest: data }
    }

    /// The first attribute of type `ty`.
    pub fn attr(&self, ty: u16) -> Option<Attr<'a>> {
        self.clone().find(|a| a.ty == ty)
    }
}

impl<'a> Iterator for Attrs<'a> {
    type Item = Attr<'a>;

    fn next(&mut self) -> Option<Attr<'a>> {
        if self.rest.len() < 4 {
            return None;
        }
        let len = usize::from(u16::from_ne_bytes([self.rest[0], self.rest[1]]));
        let ty = u16::from_ne_bytes([self.rest[2], self.rest[3]]) & NLA_TYPE_MASK;
        if len < 4 || len > self.rest.len() {
            self.rest = &[];
            return None;
        }
        let data = &self.rest[4..len];
        let next = align4(len).min(self.rest.len());
        self.rest = &self.rest[next..];
        Some(Attr { ty, data })
    }
}

/// One received netlink message.
#[derive(Debug, Clone, Copy)]
pub struct Msg<'a> {
    /// `nlmsg_type`.
    pub ty: u16,
    /// `nlmsg_flags`.
    pub flags: u16,
    /// `nlmsg_seq`.
    pub seq: u32,
    /// Everything after the `nlmsghdr`.
    pub payload: &'a [u8],
}

impl<'a> Msg<'a> {
    /// The attributes after the `nfgenmsg` header.
    pub fn nf_attrs(&self) -> Attrs<'a> {
        Attrs::new(self.payload.get(NFGENMSG_LEN..).unwrap_or(&[]))
    }

    /// `nfgen_family` of the message.
    pub fn nf_family(&self) -> u8 {
        self.payload.first().copied().unwrap_or(0)
    }

    /// `res_id` of the `nfgenmsg` (the low 16 bits of the ruleset generation in replies).
    pub fn nf_res_id(&self) -> u16 {
        match self.payload.get(2..4) {
            Some(b) => u16::from_be_bytes([b[0], b[1]]),
            None => 0,
        }
    }

    /// For `NLMSG_ERROR`: the (negative) error code, the sequence number of the message it
    /// answers, and the extended-ack message if the kernel sent one.
    pub fn error(&self) -> Option<(i32, Option<String>)> {
        if self.ty != NLMSG_ERROR {
            return None;
        }
        let code = i32::from_ne_bytes(self.payload.get(..4)?.try_into().ok()?);
        let mut extack = None;
        if self.flags & NLM_F_ACK_TLVS != 0 {
            // The echoed request: only its header when capped, the whole message otherwise.
            let orig_len = self
                .payload
                .get(4..8)
                .and_then(|b| b.try_into().ok())
                .map(u32::from_ne_bytes)
                .and_then(|l| usize::try_from(l).ok())
                .unwrap_or(NLMSG_HDRLEN);
            let echoed = if self.flags & NLM_F_CAPPED != 0 || code == 0 {
                NLMSG_HDRLEN
            } else {
                align4(orig_len)
            };
            if let Some(tlvs) = self.payload.get(4 + echoed..) {
                extack = Attrs::new(tlvs)
                    .attr(NLMSGERR_ATTR_MSG)
                    .map(|a| a.string())
                    .filter(|s| !s.is_empty());
            }
        }
        Some((code, extack))
    }
}

/// Iterates over the messages in one received datagram; stops at a truncated one.
pub fn messages(buf: &[u8]) -> impl Iterator<Item = Msg<'_>> {
    let mut rest = buf;
    std::iter::from_fn(move || {
        if rest.len() < NLMSG_HDRLEN {
            return None;
        }
        let len = usize::try_from(u32::from_ne_bytes(rest[0..4].try_into().ok()?)).ok()?;
        if len < NLMSG_HDRLEN || len > rest.len() {
            rest = &[];
            return None;
        }
        let msg = Msg {
            ty: u16::from_ne_bytes(rest[4..6].try_into().ok()?),
            flags: u16::from_ne_bytes(rest[6..8].try_into().ok()?),
            seq: u32::from_ne_bytes(rest[8..12].try_into().ok()?),
            payload: &rest[NLMSG_HDRLEN..len],
        };
        rest = &rest[align4(len).min(rest.len())..];
        Some(msg)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::uapi::NLM_F_REQUEST;

    #[test]
    fn attributes_are_padded_and_nested_lengths_cover_their_children() {
        let mut w = AttrWriter::new();
        w.put_strz(1, "t"); // 4 + 2 = 6, padded to 8
        w.nest(4, |w| {
            w.put_be32(2, 0x0f);
            w.put(1, &[0xaa]); // 5, padded to 8
        });
        let b = w.into_bytes();
        assert_eq!(
            b,
            [
                6, 0, 1, 0, b't', 0, 0, 0, // NFTA_*_TABLE "t\0" + 2 bytes padding
                20, 0, 4, 0x80, // nested (NLA_F_NESTED) type 4, length 20 = 4 + 8 + 8
                8, 0, 2, 0, 0, 0, 0, 0x0f, // be32 15
                5, 0, 1, 0, 0xaa, 0, 0, 0, // one byte + 3 padding
            ]
        );
        let attrs: Vec<_> = Attrs::new(&b).collect();
        assert_eq!(attrs.len(), 2);
        assert_eq!(attrs[0].string(), "t");
        let inner: Vec<_> = attrs[1].nested().collect();
        assert_eq!(inner[0].be32(), Some(15));
        assert_eq!(inner[1].data, [0xaa]);
    }

    #[test]
    fn malformed_attributes_stop_the_iteration() {
        // length 40 but only 8 bytes present
        let b = [40u8, 0, 1, 0, 1, 2, 3, 4];
        assert_eq!(Attrs::new(&b).count(), 0);
        // length below the header size
        let b = [2u8, 0, 1, 0];
        assert_eq!(Attrs::new(&b).count(), 0);
    }

    #[test]
    fn messages_are_framed_with_nfgenmsg() {
        let mut out = Vec::new();
        push_msg(&mut out, 0x10, NLM_F_REQUEST, 7, 0, 10, &[]);
        // The batch-begin nft sends (captured with strace): len 20, type 0x10, REQUEST,
        // seq 7, family AF_UNSPEC, version 0, res_id htons(NFNL_SUBSYS_NFTABLES).
        assert_eq!(
            out,
            [20, 0, 0, 0, 0x10, 0, 1, 0, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 10]
        );
        let m: Vec<_> = messages(&out).collect();
        assert_eq!(m.len(), 1);
        assert_eq!((m[0].ty, m[0].seq, m[0].nf_res_id()), (0x10, 7, 10));
    }

    #[test]
    fn errors_and_acks_are_parsed_with_extack() {
        // NLMSG_ERROR, flags CAPPED|ACK_TLVS, seq 3: error -22, echoed header (16 bytes),
        // then NLMSGERR_ATTR_MSG "bad".
        let mut b = Vec::new();
        let body_len = 4 + 16 + 8;
        b.extend_from_slice(&((16 + body_len) as u32).to_ne_bytes());
        b.extend_from_slice(&NLMSG_ERROR.to_ne_bytes());
        b.extend_from_slice(&(NLM_F_CAPPED | NLM_F_ACK_TLVS).to_ne_bytes());
        b.extend_from_slice(&3u32.to_ne_bytes());
        b.extend_from_slice(&0u32.to_ne_bytes());
        b.extend_from_slice(&(-22i32).to_ne_bytes());
        b.extend_from_slice(&[0u8; 16]);
        b.extend_from_slice(&[8, 0, 1, 0, b'b', b'a', b'd', 0]);
        let m: Vec<_> = messages(&b).collect();
        assert_eq!(m[0].seq, 3);
        assert_eq!(m[0].error(), Some((-22, Some("bad".to_string()))));

        // A plain ACK: error 0, no TLVs.
        let mut a = Vec::new();
        a.extend_from_slice(&36u32.to_ne_bytes());
        a.extend_from_slice(&NLMSG_ERROR.to_ne_bytes());
        a.extend_from_slice(&NLM_F_CAPPED.to_ne_bytes());
        a.extend_from_slice(&9u32.to_ne_bytes());
        a.extend_from_slice(&0u32.to_ne_bytes());
        a.extend_from_slice(&0i32.to_ne_bytes());
        a.extend_from_slice(&[0u8; 16]);
        let m: Vec<_> = messages(&a).collect();
        assert_eq!(m[0].error(), Some((0, None)));
    }
}
