//! The shard's fixed-size structures, one type each, with their write and parse side by
//! side so that both follow the same table in `formats/FORMAT.md` (header, footer, record
//! entry, blob entry). Parsing here only reads fields; what they must satisfy is checked by
//! the reader, which knows the file's size and path.

use xxhash_rust::xxh3::xxh3_64;

/// First bytes of every shard.
pub const MAGIC: &[u8; 8] = b"GDTSHARD";
/// Last bytes of every complete shard: a file without them is truncated or being written.
pub const END_MAGIC: &[u8; 8] = b"GDTSHEND";
/// The version this gdt writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// Upper bound on the parameters JSON in a header.
pub const MAX_PARAMS_LEN: usize = 64 * 1024;
/// Upper bound on a record's metadata JSON.
pub const MAX_META_LEN: u32 = 1024 * 1024;
/// Blob 0 of a record is its metadata, blob 1 its spectrogram, then its frame chunks.
pub const FIRST_CHUNK_BLOB: usize = 2;

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// The fixed part of the header (FORMAT.md, "Header"); the parameters JSON follows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// The first 8 bytes as found; [`MAGIC`] in a shard.
    pub magic: [u8; 8],
    /// Format version.
    pub version: u32,
    /// Bytes of parameters JSON after the fixed part.
    pub params_len: u32,
    /// xxh3 of bytes 0..16 followed by the parameters JSON.
    pub checksum: u64,
}

impl Header {
    /// Bytes of the fixed part.
    pub const LEN: usize = 24;

    /// The header of a shard written now with these parameters.
    pub fn for_params(params_json: &[u8]) -> Header {
        let mut h = Header {
            magic: *MAGIC,
            version: FORMAT_VERSION,
            params_len: params_json.len() as u32,
            checksum: 0,
        };
        h.checksum = h.expected_checksum(params_json);
        h
    }

    fn prefix(&self) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&self.magic);
        b[8..12].copy_from_slice(&self.version.to_le_bytes());
        b[12..16].copy_from_slice(&self.params_len.to_le_bytes());
        b
    }

    /// What the checksum field must hold for these parameters bytes.
    pub fn expected_checksum(&self, params_json: &[u8]) -> u64 {
        xxh3_64(&[&self.prefix()[..], params_json].concat())
    }

    /// Appends the fixed part.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.prefix());
        out.extend_from_slice(&self.checksum.to_le_bytes());
    }

    /// Reads the fixed part from the first [`Header::LEN`] bytes of `b`.
    pub fn parse(b: &[u8]) -> Header {
        Header {
            magic: b[..8].try_into().expect("8 bytes"),
            version: u32_at(b, 8),
            params_len: u32_at(b, 12),
            checksum: u64_at(b, 16),
        }
    }
}

/// The last [`Footer::LEN`] bytes of a shard (FORMAT.md, "Footer").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Footer {
    /// Where the index starts.
    pub index_offset: u64,
    /// Record entries in the index.
    pub record_count: u32,
    /// Blob entries in the index.
    pub blob_count: u32,
    /// xxh3 of the index bytes.
    pub index_checksum: u64,
    /// The file's size.
    pub file_len: u64,
    /// xxh3 of footer bytes 0..32.
    pub checksum: u64,
    /// The last 8 bytes as found; [`END_MAGIC`] in a complete shard.
    pub end_magic: [u8; 8],
}

impl Footer {
    /// Bytes of the footer.
    pub const LEN: usize = 48;

    /// The footer of a shard being finished, its checksum filled in.
    pub fn sealed(
        index_offset: u64,
        record_count: u32,
        blob_count: u32,
        index_checksum: u64,
        file_len: u64,
    ) -> Footer {
        let mut f = Footer {
            index_offset,
            record_count,
            blob_count,
            index_checksum,
            file_len,
            checksum: 0,
            end_magic: *END_MAGIC,
        };
        f.checksum = f.expected_checksum();
        f
    }

    fn covered(&self) -> [u8; 32] {
        let mut b = [0u8; 32];
        b[..8].copy_from_slice(&self.index_offset.to_le_bytes());
        b[8..12].copy_from_slice(&self.record_count.to_le_bytes());
        b[12..16].copy_from_slice(&self.blob_count.to_le_bytes());
        b[16..24].copy_from_slice(&self.index_checksum.to_le_bytes());
        b[24..32].copy_from_slice(&self.file_len.to_le_bytes());
        b
    }

    /// What the checksum field must hold for the other fields.
    pub fn expected_checksum(&self) -> u64 {
        xxh3_64(&self.covered())
    }

    /// Bytes of the index this footer describes.
    pub fn index_len(&self) -> u64 {
        self.record_count as u64 * RecordEntry::LEN as u64 + self.blob_count as u64 * BlobEntry::LEN as u64
    }

    /// Appends the footer.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.covered());
        out.extend_from_slice(&self.checksum.to_le_bytes());
        out.extend_from_slice(&self.end_magic);
    }

    /// Reads a footer from exactly [`Footer::LEN`] bytes.
    pub fn parse(b: &[u8]) -> Footer {
        Footer {
            index_offset: u64_at(b, 0),
            record_count: u32_at(b, 8),
            blob_count: u32_at(b, 12),
            index_checksum: u64_at(b, 16),
            file_len: u64_at(b, 24),
            checksum: u64_at(b, 32),
            end_magic: b[40..48].try_into().expect("8 bytes"),
        }
    }
}

/// A record's entry in the shard index: everything the loader needs to size its buffers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordEntry {
    /// Stored video frames.
    pub frames: u32,
    /// Width of a stored frame.
    pub width: u32,
    /// Height of a stored frame.
    pub height: u32,
    /// Spectrogram frames.
    pub mel_frames: u32,
    /// Spectrogram rows (the parameters' `mels`).
    pub mels: u32,
    /// Index of the record's first blob entry.
    pub first_blob: u32,
    /// Blobs of this record: 2 + its frame chunks.
    pub blob_count: u32,
}

impl RecordEntry {
    /// Bytes of one entry (the last 4 are reserved, written 0).
    pub const LEN: usize = 32;

    /// Appends the entry.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        for v in [
            self.frames,
            self.width,
            self.height,
            self.mel_frames,
            self.mels,
            self.first_blob,
            self.blob_count,
            0,
        ] {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }

    /// Reads an entry from exactly [`RecordEntry::LEN`] bytes; `None` when the reserved
    /// field is not 0 (a later version's meaning this one cannot know).
    pub fn parse(b: &[u8]) -> Option<RecordEntry> {
        if u32_at(b, 28) != 0 {
            return None;
        }
        Some(RecordEntry {
            frames: u32_at(b, 0),
            width: u32_at(b, 4),
            height: u32_at(b, 8),
            mel_frames: u32_at(b, 12),
            mels: u32_at(b, 16),
            first_blob: u32_at(b, 20),
            blob_count: u32_at(b, 24),
        })
    }
}

/// Where a blob lives and what it must hash and decompress to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlobEntry {
    /// Offset of the stored bytes in the file.
    pub offset: u64,
    /// Stored bytes.
    pub len: u32,
    /// Decoded bytes.
    pub raw_len: u32,
    /// xxh3 of the stored bytes.
    pub checksum: u64,
}

impl BlobEntry {
    /// Bytes of one entry.
    pub const LEN: usize = 24;

    /// Appends the entry.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.offset.to_le_bytes());
        out.extend_from_slice(&self.len.to_le_bytes());
        out.extend_from_slice(&self.raw_len.to_le_bytes());
        out.extend_from_slice(&self.checksum.to_le_bytes());
    }

    /// Reads an entry from exactly [`BlobEntry::LEN`] bytes.
    pub fn parse(b: &[u8]) -> BlobEntry {
        BlobEntry {
            offset: u64_at(b, 0),
            len: u32_at(b, 8),
            raw_len: u32_at(b, 12),
            checksum: u64_at(b, 16),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_structure_parses_what_it_writes_at_its_length() {
        let mut b = Vec::new();
        let h = Header::for_params(b"{}");
        h.write_to(&mut b);
        assert_eq!((b.len(), Header::parse(&b)), (Header::LEN, h));
        assert_eq!(h.checksum, h.expected_checksum(b"{}"));
        b.clear();
        let f = Footer::sealed(100, 2, 7, 0xfeed, 300);
        f.write_to(&mut b);
        assert_eq!((b.len(), Footer::parse(&b)), (Footer::LEN, f));
        assert_eq!(&b[40..], END_MAGIC);
        b.clear();
        let r = RecordEntry {
            frames: 1,
            width: 2,
            height: 3,
            mel_frames: 4,
            mels: 5,
            first_blob: 6,
            blob_count: 7,
        };
        r.write_to(&mut b);
        assert_eq!((b.len(), RecordEntry::parse(&b)), (RecordEntry::LEN, Some(r)));
        assert_eq!(&b[28..], &[0, 0, 0, 0], "reserved is written 0");
        b[30] = 1;
        assert_eq!(RecordEntry::parse(&b), None, "reserved must be 0");
        b.clear();
        let e = BlobEntry {
            offset: 1 << 40,
            len: 9,
            raw_len: 10,
            checksum: 11,
        };
        e.write_to(&mut b);
        assert_eq!((b.len(), BlobEntry::parse(&b)), (BlobEntry::LEN, e));
    }
}
