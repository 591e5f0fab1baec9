//! The Go version a binary was built with, from its build information (the `.go.buildinfo`
//! section, which `-ldflags='-s -w'` keeps; `go version FILE` reads the same bytes).
//!
//! The layout (Go's `debug/buildinfo`): a 32-byte header that starts with the magic
//! `"\xff Go buildinf:"`, then the pointer size and a flags byte. Since Go 1.18 (flag bit 2)
//! the version string follows the header inline, prefixed by its length as an unsigned
//! varint; before, the header holds the address of a Go string header (pointer, length)
//! elsewhere in the file. `object` does not decode either, and the format is 20 lines, so it
//! is read here, every read bounds-checked.

use object::{Object as _, ObjectSection as _};

const MAGIC: &[u8] = b"\xff Go buildinf:";
const HEADER_LEN: usize = 32;
const FLAG_INLINE_STRINGS: u8 = 2;
/// Longest version string accepted ("go1.22.5", "devel go1.23-abcdef ...").
const MAX_VERSION: usize = 128;

/// The version string (`"go1.19.8"`), or `None` when the binary carries no readable build
/// information.
pub fn go_version(elf: &object::File<'_>) -> Option<String> {
    let section = elf.section_by_name(".go.buildinfo")?;
    let data = section.data().ok()?;
    let header = data.get(..HEADER_LEN)?;
    if !header.starts_with(MAGIC) {
        return None;
    }
    let ptr_size = header[MAGIC.len()];
    let flags = header[MAGIC.len() + 1];
    let bytes = if flags & FLAG_INLINE_STRINGS != 0 {
        let (len, used) = uvarint(data.get(HEADER_LEN..)?)?;
        let start = HEADER_LEN.checked_add(used)?;
        data.get(start..start.checked_add(usize::try_from(len).ok()?)?)?
    } else {
        if ptr_size != 8 || flags & 1 != 0 {
            // Only 64-bit little-endian binaries are probed.
            return None;
        }
        let string_header = u64::from_le_bytes(data.get(16..24)?.try_into().ok()?);
        let header = read_at(elf, string_header, 16)?;
        let ptr = u64::from_le_bytes(header.get(..8)?.try_into().ok()?);
        let len = u64::from_le_bytes(header.get(8..16)?.try_into().ok()?);
        read_at(elf, ptr, usize::try_from(len).ok()?)?
    };
    if bytes.is_empty() || bytes.len() > MAX_VERSION {
        return None;
    }
    std::str::from_utf8(bytes).ok().map(str::to_string)
}

/// `len` bytes at virtual address `address`, from whichever section holds them.
fn read_at<'a>(elf: &object::File<'a>, address: u64, len: usize) -> Option<&'a [u8]> {
    elf.sections().find_map(|section| {
        let offset = address.checked_sub(section.address())?;
        if offset >= section.size() {
            return None;
        }
        let data = section.data().ok()?;
        let start = usize::try_from(offset).ok()?;
        data.get(start..start.checked_add(len)?)
    })
}

/// An unsigned LEB128 varint, as Go's `encoding/binary.Uvarint`: (value, bytes used).
fn uvarint(data: &[u8]) -> Option<(u64, usize)> {
    let mut value = 0u64;
    for (i, &byte) in data.iter().enumerate().take(10) {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

/// (major, minor) of a version string such as `"go1.19.8"` or `"go1.21rc2"`.
pub fn parse_go_version(version: &str) -> Option<(u32, u32)> {
    let rest = version.strip_prefix("go")?;
    let mut parts = rest.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor_text = parts.next()?;
    let digits: String = minor_text
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    Some((major, digits.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert_eq!(parse_go_version("go1.19.8"), Some((1, 19)));
        assert_eq!(parse_go_version("go1.21rc2"), Some((1, 21)));
        assert_eq!(parse_go_version("go1.17"), Some((1, 17)));
        assert_eq!(parse_go_version("devel go1.23-abc"), None);
        assert_eq!(parse_go_version("go"), None);
    }

    #[test]
    fn varints() {
        assert_eq!(uvarint(&[8]), Some((8, 1)));
        assert_eq!(uvarint(&[0x80, 0x01]), Some((128, 2)));
        assert_eq!(uvarint(&[0x80; 12]), None);
        assert_eq!(uvarint(&[]), None);
    }
}
