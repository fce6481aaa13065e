//! A fast reader of raw BSON: the elements of a document as borrowed values, without building
//! anything.
//!
//! bson's own `RawIter` validates every key as UTF-8 and wraps each step in `Result`s with key
//! context, which costs more than the conversion itself on typical documents. This reader checks
//! the same bounds (lengths, terminators) but hands keys out as bytes: the converter compares them
//! with the keys it already knows and validates UTF-8 only for new keys. Values are validated as
//! they are read (UTF-8 of strings, lengths and terminators of nested documents).

/// Why bytes are not BSON (a short, static reason: errors are rare and must not slow reading).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ReadError(pub &'static str);

/// A BSON value borrowed from a document's bytes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Bv<'a> {
    Double(f64),
    String(&'a str),
    /// A sub-document's bytes (length prefix to terminating NUL, checked).
    Document(&'a [u8]),
    /// An array's bytes (a document keyed "0", "1", ...; checked).
    Array(&'a [u8]),
    Binary(u8, &'a [u8]),
    Undefined,
    ObjectId(&'a [u8; 12]),
    Bool(bool),
    DateTime(i64),
    Null,
    Regex(&'a str, &'a str),
    DbPointer(&'a str, &'a [u8; 12]),
    Code(&'a str),
    Symbol(&'a str),
    CodeWithScope(&'a str, &'a [u8]),
    Int32(i32),
    Timestamp {
        time: u32,
        increment: u32,
    },
    Int64(i64),
    Decimal(&'a [u8; 16]),
    MinKey,
    MaxKey,
}

#[cold]
fn malformed(what: &'static str) -> ReadError {
    ReadError(what)
}

/// Checks that `bytes` hold exactly one document (length prefix and terminator).
pub(crate) fn check_document(bytes: &[u8]) -> Result<(), ReadError> {
    let len = read_i32(bytes, 0)?;
    if len < 5 || len as usize != bytes.len() || bytes[bytes.len() - 1] != 0 {
        return Err(malformed("document length or terminator is wrong"));
    }
    Ok(())
}

#[inline]
fn read_i32(b: &[u8], at: usize) -> Result<i32, ReadError> {
    match b.get(at..at + 4) {
        Some(s) => Ok(i32::from_le_bytes([s[0], s[1], s[2], s[3]])),
        None => Err(malformed("truncated value")),
    }
}

#[inline]
fn read_8(b: &[u8], at: usize) -> Result<[u8; 8], ReadError> {
    b.get(at..at + 8)
        .and_then(|s| s.try_into().ok())
        .ok_or_else(|| malformed("truncated value"))
}

#[inline]
fn utf8(bytes: &[u8]) -> Result<&str, ReadError> {
    // Keys and values are mostly short ASCII, which `is_ascii` checks in line, a word at a time,
    // several times faster than `from_utf8` (a call, and a byte loop until aligned).
    if bytes.is_ascii() {
        // SAFETY: ASCII is valid UTF-8.
        return Ok(unsafe { std::str::from_utf8_unchecked(bytes) });
    }
    std::str::from_utf8(bytes).map_err(|_| malformed("invalid UTF-8"))
}

/// A C string at `at` within `b[..end]`: (bytes without the NUL, position after the NUL).
#[inline]
fn cstring(b: &[u8], at: usize, end: usize) -> Result<(&[u8], usize), ReadError> {
    let rest = b.get(at..end).ok_or_else(|| malformed("truncated key"))?;
    match first_nul(rest) {
        Some(n) => Ok((&rest[..n], at + n + 1)),
        None => Err(malformed("unterminated C string")),
    }
}

/// Position of the first NUL in `bytes`. Every element starts with a key to scan, so words are
/// tested 8 bytes at a time (the lowest flagged byte of `(w - 0x01..) & !w & 0x80..` is exactly
/// the first zero byte: borrows only flag bytes above a zero).
#[inline(always)]
fn first_nul(bytes: &[u8]) -> Option<usize> {
    const LOW: u64 = u64::from_le_bytes([0x01; 8]);
    const HIGH: u64 = u64::from_le_bytes([0x80; 8]);
    let mut i = 0;
    while let Some(chunk) = bytes.get(i..i + 8) {
        let mut w = [0u8; 8];
        w.copy_from_slice(chunk);
        let w = u64::from_le_bytes(w);
        let zero = w.wrapping_sub(LOW) & !w & HIGH;
        if zero != 0 {
            return Some(i + (zero.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    bytes[i..].iter().position(|&c| c == 0).map(|n| i + n)
}

/// A length-prefixed string at `at` within `b[..end]`: (text, position after it).
#[inline]
fn string(b: &[u8], at: usize, end: usize) -> Result<(&str, usize), ReadError> {
    let len = read_i32(b, at)?;
    if len < 1 {
        return Err(malformed("string length below 1"));
    }
    let stop = at + 4 + len as usize;
    if stop > end || b[stop - 1] != 0 {
        return Err(malformed("string length or terminator is wrong"));
    }
    Ok((utf8(&b[at + 4..stop - 1])?, stop))
}

/// A nested document at `at` within `b[..end]`: (its bytes, position after it).
#[inline]
fn document(b: &[u8], at: usize, end: usize) -> Result<(&[u8], usize), ReadError> {
    let len = read_i32(b, at)?;
    if len < 5 {
        return Err(malformed("document length below 5"));
    }
    let stop = at + len as usize;
    if stop > end || b[stop - 1] != 0 {
        return Err(malformed("document length or terminator is wrong"));
    }
    Ok((&b[at..stop], stop))
}

/// The elements of one document, as (key bytes, value).
pub(crate) struct Elements<'a> {
    b: &'a [u8],
    pos: usize,
    /// Position of the terminating NUL.
    end: usize,
}

impl<'a> Elements<'a> {
    /// The elements of `doc`, whose length and terminator are already checked (every document
    /// this reader hands out is; top-level documents are checked by [`check_document`]).
    pub(crate) fn new(doc: &'a [u8]) -> Self {
        Self {
            b: doc,
            pos: 4,
            end: doc.len().saturating_sub(1),
        }
    }

    #[inline(always)]
    fn element(&mut self) -> Result<(&'a [u8], Bv<'a>), ReadError> {
        let b = self.b;
        let end = self.end;
        let tag = b[self.pos];
        let (key, at) = cstring(b, self.pos + 1, end)?;
        let (value, next) = match tag {
            0x01 => (Bv::Double(f64::from_le_bytes(read_8(b, at)?)), at + 8),
            0x02 => {
                let (s, next) = string(b, at, end)?;
                (Bv::String(s), next)
            }
            0x03 => {
                let (d, next) = document(b, at, end)?;
                (Bv::Document(d), next)
            }
            0x04 => {
                let (d, next) = document(b, at, end)?;
                (Bv::Array(d), next)
            }
            0x05 => {
                let len = read_i32(b, at)?;
                if len < 0 {
                    return Err(malformed("binary length below 0"));
                }
                let start = at + 5;
                let stop = start + len as usize;
                if stop > end {
                    return Err(malformed("binary length is wrong"));
                }
                let subtype = b[at + 4];
                let mut data = &b[start..stop];
                if subtype == 0x02 {
                    // The old binary subtype repeats the length inside.
                    let inner = read_i32(data, 0)?;
                    if inner < 0 || inner as usize + 4 != data.len() {
                        return Err(malformed("old binary's inner length is wrong"));
                    }
                    data = &data[4..];
                }
                (Bv::Binary(subtype, data), stop)
            }
            0x06 => (Bv::Undefined, at),
            0x07 => {
                let id = b
                    .get(at..at + 12)
                    .and_then(|s| s.try_into().ok())
                    .ok_or_else(|| malformed("truncated ObjectId"))?;
                (Bv::ObjectId(id), at + 12)
            }
            0x08 => match b.get(at) {
                Some(0) => (Bv::Bool(false), at + 1),
                Some(1) => (Bv::Bool(true), at + 1),
                _ => return Err(malformed("boolean is neither 0 nor 1")),
            },
            0x09 => (Bv::DateTime(i64::from_le_bytes(read_8(b, at)?)), at + 8),
            0x0A => (Bv::Null, at),
            0x0B => {
                let (pattern, after) = cstring(b, at, end)?;
                let (options, next) = cstring(b, after, end)?;
                (Bv::Regex(utf8(pattern)?, utf8(options)?), next)
            }
            0x0C => {
                let (ns, after) = string(b, at, end)?;
                let id = b
                    .get(after..after + 12)
                    .and_then(|s| s.try_into().ok())
                    .ok_or_else(|| malformed("truncated DBPointer"))?;
                (Bv::DbPointer(ns, id), after + 12)
            }
            0x0D => {
                let (s, next) = string(b, at, end)?;
                (Bv::Code(s), next)
            }
            0x0E => {
                let (s, next) = string(b, at, end)?;
                (Bv::Symbol(s), next)
            }
            0x0F => {
                let total = read_i32(b, at)?;
                let stop = at + total.max(0) as usize;
                if total < 14 || stop > end {
                    return Err(malformed("code with scope length is wrong"));
                }
                let (code, after) = string(b, at + 4, stop)?;
                let (scope, after) = document(b, after, stop)?;
                if after != stop {
                    return Err(malformed("code with scope length is wrong"));
                }
                (Bv::CodeWithScope(code, scope), stop)
            }
            0x10 => (Bv::Int32(read_i32(b, at)?), at + 4),
            0x11 => {
                let v = u64::from_le_bytes(read_8(b, at)?);
                (
                    Bv::Timestamp {
                        time: (v >> 32) as u32,
                        increment: v as u32,
                    },
                    at + 8,
                )
            }
            0x12 => (Bv::Int64(i64::from_le_bytes(read_8(b, at)?)), at + 8),
            0x13 => {
                let d = b
                    .get(at..at + 16)
                    .and_then(|s| s.try_into().ok())
                    .ok_or_else(|| malformed("truncated Decimal128"))?;
                (Bv::Decimal(d), at + 16)
            }
            0xFF => (Bv::MinKey, at),
            0x7F => (Bv::MaxKey, at),
            _ => return Err(malformed("unknown element type")),
        };
        if next > end {
            return Err(malformed("element runs past the end of its document"));
        }
        self.pos = next;
        Ok((key, value))
    }
}

impl<'a> Iterator for Elements<'a> {
    type Item = Result<(&'a [u8], Bv<'a>), ReadError>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        if self.pos >= self.end {
            return None;
        }
        let item = self.element();
        if item.is_err() {
            self.pos = self.end;
        }
        Some(item)
    }
}

/// A key as text (keys are validated only when the converter has not seen them before).
#[inline]
pub(crate) fn key_str(key: &[u8]) -> Result<&str, ReadError> {
    utf8(key)
}

/// The value at `key` in a document, if any (the first one, if repeated).
#[cfg(test)]
pub(crate) fn get<'a>(doc: &'a [u8], key: &str) -> Option<Bv<'a>> {
    Elements::new(doc)
        .map_while(Result::ok)
        .find(|(k, _)| *k == key.as_bytes())
        .map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::{doc, RawDocumentBuf};

    #[test]
    fn reads_what_bson_writes_and_refuses_broken_bytes() {
        let d = RawDocumentBuf::from_document(&doc! { "a": 1, "b": { "c": "x" }, "d": [true] })
            .unwrap();
        let bytes = d.as_bytes();
        check_document(bytes).unwrap();
        let items: Vec<_> = Elements::new(bytes).map(Result::unwrap).collect();
        assert_eq!(items.len(), 3);
        assert_eq!(items[0], (&b"a"[..], Bv::Int32(1)));
        let Bv::Document(sub) = items[1].1 else {
            panic!()
        };
        assert_eq!(get(sub, "c"), Some(Bv::String("x")));
        let Bv::Array(arr) = items[2].1 else { panic!() };
        assert_eq!(get(arr, "0"), Some(Bv::Bool(true)));

        // A string whose length runs past its document.
        let mut broken = bytes.to_vec();
        let at = broken.windows(2).position(|w| w == b"c\0").unwrap() + 2;
        broken[at] = 0x7f;
        let Bv::Document(sub) = Elements::new(&broken).nth(1).unwrap().unwrap().1 else {
            panic!("the outer document is still readable")
        };
        let err = Elements::new(sub).next().unwrap().unwrap_err();
        assert!(err.to_string().contains("string length"), "{err}");
        assert!(check_document(&bytes[..bytes.len() - 1]).is_err());
        // An unknown element type stops the iteration with an error.
        let mut unknown = bytes.to_vec();
        unknown[4] = 0x42;
        let mut it = Elements::new(&unknown);
        assert!(it.next().unwrap().is_err());
        assert!(it.next().is_none());
    }

    #[test]
    fn the_first_nul_is_found_at_every_offset() {
        for len in 0..40 {
            for nul in 0..=len {
                for filler in [b'a', 0x01, 0x80, 0xff] {
                    let mut bytes = vec![filler; len];
                    if nul < len {
                        bytes[nul] = 0;
                        // A second NUL must not be taken for the first.
                        if nul + 1 < len {
                            bytes[nul + 1] = 0;
                        }
                    }
                    let expected = bytes.iter().position(|&c| c == 0);
                    assert_eq!(first_nul(&bytes), expected, "{bytes:?}");
                    assert_eq!(
                        first_nul(&bytes[1.min(len)..]),
                        bytes[1.min(len)..].iter().position(|&c| c == 0)
                    );
                }
            }
        }
    }

    #[test]
    fn text_is_checked_with_or_without_non_ascii() {
        assert_eq!(utf8(b"plain"), Ok("plain"));
        assert_eq!(utf8(b""), Ok(""));
        assert_eq!(
            utf8("a long plain text then é中🎉".as_bytes()),
            Ok("a long plain text then é中🎉")
        );
        for bad in [
            &b"\xff"[..],
            b"abcdefgh\xc3",
            b"\xc3(",
            b"plain text, then \xed\xa0\x80",
        ] {
            assert!(utf8(bad).is_err(), "{bad:?}");
            assert!(key_str(bad).is_err(), "{bad:?}");
        }
    }
}
