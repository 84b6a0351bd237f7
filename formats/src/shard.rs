//! Shard files: a self-describing header, the records' blobs, an index and a footer.
//! The byte layout is specified in `formats/FORMAT.md`; this module is its only reader and
//! writer. Opening a shard validates everything that bounds a later read (magic, version,
//! checksums of header, index and footer, every offset, length and geometry), so that reading
//! a record afterwards can fail only on a blob's own checksum or content.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use memmap2::Mmap;
use xxhash_rust::xxh3::xxh3_64;

use crate::error::{FormatError, Result};
use crate::field::frames::{encode_chunk, ChunkDecoder, FrameShape};
use crate::field::meta::RecordMeta;
use crate::field::spectrogram;
use crate::params::PackParams;

pub const MAGIC: &[u8; 8] = b"GDTSHARD";
pub const END_MAGIC: &[u8; 8] = b"GDTSHEND";
pub const FORMAT_VERSION: u32 = 1;
/// Fixed part of the header before the parameters JSON.
pub const HEADER_FIXED: usize = 24;
pub const FOOTER_LEN: usize = 48;
pub const RECORD_ENTRY_LEN: usize = 32;
pub const BLOB_ENTRY_LEN: usize = 24;
/// Upper bound on the parameters JSON in a header.
pub const MAX_PARAMS_LEN: usize = 64 * 1024;
/// Upper bound on a record's metadata JSON.
pub const MAX_META_LEN: u32 = 1024 * 1024;
/// Blob 0 of a record is its metadata, blob 1 its spectrogram, then its frame chunks.
pub const FIRST_CHUNK_BLOB: usize = 2;

/// A record's entry in the shard index: everything the loader needs to size its buffers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordEntry {
    pub frames: u32,
    pub width: u32,
    pub height: u32,
    pub spec_frames: u32,
    pub mels: u32,
    pub first_blob: u32,
    pub blob_count: u32,
}

/// Where a blob lives and what it must hash and decompress to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlobEntry {
    pub offset: u64,
    pub len: u32,
    pub raw_len: u32,
    pub checksum: u64,
}

/// A record compressed and ready to append to a shard.
pub struct EncodedRecord {
    pub entry: RecordEntry,
    /// (stored bytes, decoded length) per blob: metadata, spectrogram, frame chunks.
    pub blobs: Vec<(Vec<u8>, u32)>,
}

impl EncodedRecord {
    /// Compresses one record. `frames` holds `frame_count` planar RGB frames of
    /// `width x height`; `spectrogram` is row-major `[mels][spec_frames]`.
    pub fn encode(
        meta: &RecordMeta,
        frames: &[u8],
        width: u32,
        height: u32,
        spectrogram_values: &[f32],
        spec_frames: u32,
        params: &PackParams,
    ) -> std::io::Result<EncodedRecord> {
        let shape = FrameShape { width, height };
        let frame_bytes = shape.bytes();
        assert!(
            frame_bytes > 0 && frames.len().is_multiple_of(frame_bytes),
            "whole frames only"
        );
        assert_eq!(
            spectrogram_values.len(),
            params.mels as usize * spec_frames as usize
        );
        let frame_count = frames.len() / frame_bytes;
        let meta_json = serde_json::to_vec(meta).expect("metadata serialises");
        let meta_len = meta_json.len() as u32;
        let mut blobs = vec![
            (meta_json, meta_len),
            (
                spectrogram::encode(spectrogram_values)?,
                (spectrogram_values.len() * 2) as u32,
            ),
        ];
        for chunk in frames.chunks(params.chunk_frames as usize * frame_bytes) {
            blobs.push((encode_chunk(chunk, shape, &params.codec)?, chunk.len() as u32));
        }
        Ok(EncodedRecord {
            entry: RecordEntry {
                frames: frame_count as u32,
                width,
                height,
                spec_frames,
                mels: params.mels,
                first_blob: 0,
                blob_count: blobs.len() as u32,
            },
            blobs,
        })
    }

    /// Bytes this record adds to a shard, index entries included.
    pub fn stored_bytes(&self) -> u64 {
        let blobs: usize = self.blobs.iter().map(|(b, _)| b.len()).sum();
        (blobs + RECORD_ENTRY_LEN + BLOB_ENTRY_LEN * self.blobs.len()) as u64
    }
}

/// Writes one shard under a temporary name; [`ShardWriter::finish`] makes it appear.
pub struct ShardWriter {
    path: PathBuf,
    tmp: PathBuf,
    out: BufWriter<File>,
    pos: u64,
    records: Vec<RecordEntry>,
    blobs: Vec<BlobEntry>,
}

/// What a finished shard holds.
#[derive(Clone, Debug)]
pub struct ShardSummary {
    pub records: usize,
    pub bytes: u64,
}

impl ShardWriter {
    pub fn create(path: &Path, params: &PackParams) -> Result<ShardWriter> {
        let tmp = crate::atomic_file::temp_path(path);
        let file = File::create(&tmp).map_err(FormatError::io(&tmp))?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        let params_json = serde_json::to_vec(params).expect("parameters serialise");
        assert!(params_json.len() <= MAX_PARAMS_LEN);
        let mut fixed = Vec::with_capacity(HEADER_FIXED);
        fixed.extend_from_slice(MAGIC);
        fixed.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        fixed.extend_from_slice(&(params_json.len() as u32).to_le_bytes());
        let checksum = xxh3_64(&[&fixed[..], &params_json].concat());
        fixed.extend_from_slice(&checksum.to_le_bytes());
        out.write_all(&fixed)
            .and_then(|()| out.write_all(&params_json))
            .map_err(FormatError::io(&tmp))?;
        Ok(ShardWriter {
            path: path.to_path_buf(),
            tmp,
            out,
            pos: (HEADER_FIXED + params_json.len()) as u64,
            records: Vec::new(),
            blobs: Vec::new(),
        })
    }

    pub fn record_count(&self) -> usize {
        self.records.len()
    }

    /// Size the shard would have if finished now.
    pub fn bytes(&self) -> u64 {
        self.pos
            + (self.records.len() * RECORD_ENTRY_LEN + self.blobs.len() * BLOB_ENTRY_LEN + FOOTER_LEN) as u64
    }

    pub fn append(&mut self, record: &EncodedRecord) -> Result<()> {
        let mut entry = record.entry;
        entry.first_blob = self.blobs.len() as u32;
        for (bytes, raw_len) in &record.blobs {
            self.out.write_all(bytes).map_err(FormatError::io(&self.tmp))?;
            self.blobs.push(BlobEntry {
                offset: self.pos,
                len: bytes.len() as u32,
                raw_len: *raw_len,
                checksum: xxh3_64(bytes),
            });
            self.pos += bytes.len() as u64;
        }
        self.records.push(entry);
        Ok(())
    }

    /// Writes the index and footer, syncs, and renames the shard into place.
    pub fn finish(mut self) -> Result<ShardSummary> {
        let mut index =
            Vec::with_capacity(self.records.len() * RECORD_ENTRY_LEN + self.blobs.len() * BLOB_ENTRY_LEN);
        for r in &self.records {
            for v in [
                r.frames,
                r.width,
                r.height,
                r.spec_frames,
                r.mels,
                r.first_blob,
                r.blob_count,
                0,
            ] {
                index.extend_from_slice(&v.to_le_bytes());
            }
        }
        for b in &self.blobs {
            index.extend_from_slice(&b.offset.to_le_bytes());
            index.extend_from_slice(&b.len.to_le_bytes());
            index.extend_from_slice(&b.raw_len.to_le_bytes());
            index.extend_from_slice(&b.checksum.to_le_bytes());
        }
        let index_offset = self.pos;
        let file_len = index_offset + index.len() as u64 + FOOTER_LEN as u64;
        let mut footer = Vec::with_capacity(FOOTER_LEN);
        footer.extend_from_slice(&index_offset.to_le_bytes());
        footer.extend_from_slice(&(self.records.len() as u32).to_le_bytes());
        footer.extend_from_slice(&(self.blobs.len() as u32).to_le_bytes());
        footer.extend_from_slice(&xxh3_64(&index).to_le_bytes());
        footer.extend_from_slice(&file_len.to_le_bytes());
        let footer_checksum = xxh3_64(&footer);
        footer.extend_from_slice(&footer_checksum.to_le_bytes());
        footer.extend_from_slice(END_MAGIC);
        let tmp = self.tmp.clone();
        (|| -> std::io::Result<()> {
            self.out.write_all(&index)?;
            self.out.write_all(&footer)?;
            let file = self.out.into_inner().map_err(|e| e.into_error())?;
            file.sync_all()?;
            std::fs::rename(&self.tmp, &self.path)?;
            if let Some(dir) = self.path.parent() {
                // Make the rename itself durable.
                File::open(dir).and_then(|d| d.sync_all()).ok();
            }
            Ok(())
        })()
        .map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            FormatError::Io {
                path: tmp.clone(),
                source: e,
            }
        })?;
        Ok(ShardSummary {
            records: self.records.len(),
            bytes: file_len,
        })
    }
}

/// A validated, memory-mapped shard.
pub struct Shard {
    path: PathBuf,
    map: Mmap,
    params: PackParams,
    records: Vec<RecordEntry>,
    blobs: Vec<BlobEntry>,
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

impl Shard {
    /// Opens and validates a shard.
    ///
    /// The file is memory-mapped. Shards are immutable once renamed into place; gdt never
    /// writes to a finished shard, and nothing else may either: a mapped file that changes or
    /// shrinks under a reader can crash it (SIGBUS).
    pub fn open(path: &Path) -> Result<Shard> {
        let file = File::open(path).map_err(FormatError::io(path))?;
        let len = file.metadata().map_err(FormatError::io(path))?.len();
        if len < (HEADER_FIXED + FOOTER_LEN) as u64 {
            return Err(FormatError::malformed(
                path,
                format!("{len} bytes is too short for a shard"),
            ));
        }
        // SAFETY: shards are immutable once complete (see above); the map is read-only.
        let map = unsafe { Mmap::map(&file) }.map_err(FormatError::io(path))?;
        let b = &map[..];
        if &b[..8] != MAGIC {
            return Err(FormatError::NotAShard {
                path: path.to_path_buf(),
                found: b[..8].to_vec(),
            });
        }
        let version = u32_at(b, 8);
        if version != FORMAT_VERSION {
            return Err(FormatError::Version {
                path: path.to_path_buf(),
                found: version,
                supported: FORMAT_VERSION,
            });
        }
        let params_len = u32_at(b, 12) as usize;
        if params_len > MAX_PARAMS_LEN || HEADER_FIXED + params_len + FOOTER_LEN > b.len() {
            return Err(FormatError::malformed(
                path,
                format!("header claims {params_len} bytes of parameters"),
            ));
        }
        let header_end = HEADER_FIXED + params_len;
        let params_bytes = &b[HEADER_FIXED..header_end];
        if xxh3_64(&[&b[..16], params_bytes].concat()) != u64_at(b, 16) {
            return Err(FormatError::Checksum {
                path: path.to_path_buf(),
                region: "header",
            });
        }
        let params: PackParams =
            serde_json::from_slice(params_bytes).map_err(|source| FormatError::Json {
                path: path.to_path_buf(),
                what: "header parameters",
                source,
            })?;
        params
            .validate()
            .map_err(|e| FormatError::malformed(path, format!("header parameters: {e}")))?;

        let footer = &b[b.len() - FOOTER_LEN..];
        if &footer[40..48] != END_MAGIC {
            return Err(FormatError::malformed(
                path,
                "no footer (truncated or still being written)",
            ));
        }
        if xxh3_64(&footer[..32]) != u64_at(footer, 32) {
            return Err(FormatError::Checksum {
                path: path.to_path_buf(),
                region: "footer",
            });
        }
        let (index_offset, record_count, blob_count) = (
            u64_at(footer, 0),
            u32_at(footer, 8) as u64,
            u32_at(footer, 12) as u64,
        );
        if u64_at(footer, 24) != len {
            return Err(FormatError::malformed(
                path,
                format!("footer says {} bytes, file has {len}", u64_at(footer, 24)),
            ));
        }
        let index_len = record_count * RECORD_ENTRY_LEN as u64 + blob_count * BLOB_ENTRY_LEN as u64;
        // Checked: a crafted offset near u64::MAX must not wrap around to a plausible sum.
        let index_end = index_offset.checked_add(index_len + FOOTER_LEN as u64);
        if index_offset < header_end as u64 || index_end != Some(len) {
            return Err(FormatError::malformed(
                path,
                "index does not fit between header and footer",
            ));
        }
        let index = &b[index_offset as usize..(index_offset + index_len) as usize];
        if xxh3_64(index) != u64_at(footer, 16) {
            return Err(FormatError::Checksum {
                path: path.to_path_buf(),
                region: "index",
            });
        }

        let records: Vec<RecordEntry> = index[..record_count as usize * RECORD_ENTRY_LEN]
            .chunks_exact(RECORD_ENTRY_LEN)
            .map(|e| RecordEntry {
                frames: u32_at(e, 0),
                width: u32_at(e, 4),
                height: u32_at(e, 8),
                spec_frames: u32_at(e, 12),
                mels: u32_at(e, 16),
                first_blob: u32_at(e, 20),
                blob_count: u32_at(e, 24),
            })
            .collect();
        let blobs: Vec<BlobEntry> = index[record_count as usize * RECORD_ENTRY_LEN..]
            .chunks_exact(BLOB_ENTRY_LEN)
            .map(|e| BlobEntry {
                offset: u64_at(e, 0),
                len: u32_at(e, 8),
                raw_len: u32_at(e, 12),
                checksum: u64_at(e, 16),
            })
            .collect();
        let shard = Shard {
            path: path.to_path_buf(),
            map,
            params,
            records,
            blobs,
        };
        shard.validate_index(header_end as u64, index_offset)?;
        Ok(shard)
    }

    /// Checks every index entry against the header's geometry and the file's regions, so
    /// that no later read can go out of bounds or allocate more than the format allows.
    fn validate_index(&self, header_end: u64, index_offset: u64) -> Result<()> {
        let p = &self.params;
        let bad = |record: usize, what: String| FormatError::Record {
            path: self.path.clone(),
            record,
            what,
        };
        let mut next_blob = 0u64;
        for (i, r) in self.records.iter().enumerate() {
            if r.width == 0 || r.height == 0 || r.width.max(r.height) > p.max_long_side.max(p.short_side) {
                return Err(bad(
                    i,
                    format!(
                        "frame size {}x{} is outside the shard's geometry",
                        r.width, r.height
                    ),
                ));
            }
            if r.frames == 0 || r.frames as u64 > p.max_frames() {
                return Err(bad(
                    i,
                    format!("{} frames is outside 1..={}", r.frames, p.max_frames()),
                ));
            }
            if r.mels != p.mels || r.spec_frames as u64 > p.max_spectrogram_frames() {
                return Err(bad(
                    i,
                    format!(
                        "spectrogram {}x{} is outside the shard's geometry",
                        r.mels, r.spec_frames
                    ),
                ));
            }
            let chunks = (r.frames as u64).div_ceil(p.chunk_frames as u64);
            if r.first_blob as u64 != next_blob || r.blob_count as u64 != FIRST_CHUNK_BLOB as u64 + chunks {
                return Err(bad(
                    i,
                    format!("blob range {}+{} is inconsistent", r.first_blob, r.blob_count),
                ));
            }
            next_blob += r.blob_count as u64;
            if next_blob > self.blobs.len() as u64 {
                return Err(bad(i, "blob range runs past the index".into()));
            }
            let frame_bytes = 3 * r.width as u64 * r.height as u64;
            for (k, blob) in self.blobs[r.first_blob as usize..next_blob as usize]
                .iter()
                .enumerate()
            {
                let end = blob.offset.checked_add(blob.len as u64);
                if blob.offset < header_end || end.is_none_or(|e| e > index_offset) {
                    return Err(bad(i, format!("blob {k} lies outside the records region")));
                }
                let expected = match k {
                    0 => blob.len as u64,
                    1 => r.mels as u64 * r.spec_frames as u64 * 2,
                    _ => {
                        let first = (k - FIRST_CHUNK_BLOB) as u64 * p.chunk_frames as u64;
                        (r.frames as u64 - first).min(p.chunk_frames as u64) * frame_bytes
                    }
                };
                if blob.raw_len as u64 != expected || (k == 0 && blob.len > MAX_META_LEN) {
                    return Err(bad(
                        i,
                        format!(
                            "blob {k} claims {} bytes decoded, geometry says {expected}",
                            blob.raw_len
                        ),
                    ));
                }
            }
        }
        if next_blob != self.blobs.len() as u64 {
            return Err(FormatError::malformed(
                &self.path,
                "index has blobs that belong to no record",
            ));
        }
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn params(&self) -> &PackParams {
        &self.params
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    pub fn entries(&self) -> &[RecordEntry] {
        &self.records
    }

    /// The file's size in bytes.
    pub fn file_len(&self) -> u64 {
        self.map.len() as u64
    }

    pub fn record(&self, index: usize) -> Result<RecordView<'_>> {
        let entry = *self.records.get(index).ok_or_else(|| {
            FormatError::malformed(
                &self.path,
                format!("record {index} requested, shard has {}", self.records.len()),
            )
        })?;
        Ok(RecordView {
            shard: self,
            index,
            entry,
        })
    }

    /// Full integrity pass: checks every blob's checksum. Returns one line per damaged blob.
    pub fn verify(&self) -> Vec<Damage> {
        let mut damage = Vec::new();
        for (i, r) in self.records.iter().enumerate() {
            for k in 0..r.blob_count as usize {
                let blob = self.blobs[r.first_blob as usize + k];
                if xxh3_64(self.blob_bytes(&blob)) != blob.checksum {
                    damage.push(Damage {
                        record: i,
                        what: format!("{} checksum mismatch", blob_name(k)),
                    });
                }
            }
        }
        damage
    }

    fn blob_bytes(&self, blob: &BlobEntry) -> &[u8] {
        // In bounds: validate_index checked every blob against the records region.
        &self.map[blob.offset as usize..blob.offset as usize + blob.len as usize]
    }
}

fn blob_name(k: usize) -> String {
    match k {
        0 => "metadata".to_string(),
        1 => "spectrogram".to_string(),
        _ => format!("frame chunk {}", k - FIRST_CHUNK_BLOB),
    }
}

/// One damaged part of a shard, as `gdt verify` reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Damage {
    pub record: usize,
    pub what: String,
}

/// Read access to one record. Every blob is checked against its checksum before use.
pub struct RecordView<'a> {
    shard: &'a Shard,
    index: usize,
    entry: RecordEntry,
}

impl<'a> RecordView<'a> {
    pub fn entry(&self) -> &RecordEntry {
        &self.entry
    }

    fn err(&self, what: String) -> FormatError {
        FormatError::Record {
            path: self.shard.path.clone(),
            record: self.index,
            what,
        }
    }

    /// A blob's stored bytes, zero-copy from the map, after checking its checksum.
    fn blob(&self, k: usize) -> Result<(&'a [u8], BlobEntry)> {
        let blob = self.shard.blobs[self.entry.first_blob as usize + k];
        let bytes = self.shard.blob_bytes(&blob);
        if xxh3_64(bytes) != blob.checksum {
            return Err(self.err(format!("{} checksum mismatch", blob_name(k))));
        }
        Ok((bytes, blob))
    }

    /// Where blob `k` of this record (0 metadata, 1 spectrogram, 2.. frame chunks) lies in
    /// the file: (offset, length). For tools and tests that need to point at bytes.
    pub fn blob_location(&self, k: usize) -> (u64, u32) {
        let blob =
            self.shard.blobs[self.entry.first_blob as usize + k.min(self.entry.blob_count as usize - 1)];
        (blob.offset, blob.len)
    }

    pub fn meta(&self) -> Result<RecordMeta> {
        let (bytes, _) = self.blob(0)?;
        serde_json::from_slice(bytes).map_err(|e| self.err(format!("metadata: {e}")))
    }

    pub fn chunk_count(&self) -> usize {
        self.entry.blob_count as usize - FIRST_CHUNK_BLOB
    }

    /// A frame chunk's compressed bytes (zero-copy) and its decoded length.
    pub fn chunk(&self, c: usize) -> Result<(&'a [u8], usize)> {
        if c >= self.chunk_count() {
            return Err(self.err(format!("chunk {c} requested, record has {}", self.chunk_count())));
        }
        let (bytes, blob) = self.blob(FIRST_CHUNK_BLOB + c)?;
        Ok((bytes, blob.raw_len as usize))
    }

    pub fn shape(&self) -> FrameShape {
        FrameShape {
            width: self.entry.width,
            height: self.entry.height,
        }
    }

    pub fn frame_bytes(&self) -> usize {
        self.shape().bytes()
    }

    /// Decodes frames `start..start + count` into `out` (planar RGB, frame after frame),
    /// decompressing only the chunks they touch.
    pub fn read_frames(
        &self,
        decoder: &mut ChunkDecoder,
        start: usize,
        count: usize,
        out: &mut Vec<u8>,
    ) -> Result<()> {
        let total = self.entry.frames as usize;
        if start.checked_add(count).is_none_or(|end| end > total) {
            return Err(self.err(format!(
                "frames {start}..{} requested, record has {total}",
                start + count
            )));
        }
        let fb = self.frame_bytes();
        let per_chunk = self.shard.params.chunk_frames as usize;
        out.clear();
        out.reserve(count * fb);
        // The decoder's own buffer, borrowed for the call: no allocation once it is grown.
        let mut buf = std::mem::take(&mut decoder.scratch);
        let mut c = start / per_chunk;
        let result = (|| {
            while c * per_chunk < start + count {
                let (bytes, raw_len) = self.chunk(c)?;
                buf.resize(raw_len, 0);
                decoder
                    .decode(bytes, self.shape(), &self.shard.params.codec, &mut buf)
                    .map_err(|e| self.err(format!("frame chunk {c}: {e}")))?;
                let from = start.max(c * per_chunk) - c * per_chunk;
                let to = (start + count).min((c + 1) * per_chunk) - c * per_chunk;
                out.extend_from_slice(&buf[from * fb..to * fb]);
                c += 1;
            }
            Ok(())
        })();
        decoder.scratch = buf;
        result
    }

    /// Decodes the whole spectrogram into `out` (row-major `[mels][spec_frames]`), reusing
    /// the decoder's zstd context and buffers.
    pub fn spectrogram_into(&self, decoder: &mut ChunkDecoder, out: &mut Vec<f32>) -> Result<()> {
        let (bytes, blob) = self.blob(1)?;
        out.resize(blob.raw_len as usize / 2, 0.0);
        let mut raw = std::mem::take(&mut decoder.scratch);
        let result = spectrogram::decode_with(&mut decoder.zstd, &mut raw, bytes, out)
            .map_err(|e| self.err(format!("spectrogram: {e}")));
        decoder.scratch = raw;
        result
    }

    /// The whole spectrogram, row-major `[mels][spec_frames]`.
    pub fn spectrogram(&self) -> Result<Vec<f32>> {
        let (bytes, blob) = self.blob(1)?;
        let mut out = vec![0f32; blob.raw_len as usize / 2];
        spectrogram::decode(bytes, &mut out).map_err(|e| self.err(format!("spectrogram: {e}")))?;
        Ok(out)
    }
}
