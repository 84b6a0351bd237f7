//! Writing a shard: records are compressed anywhere ([`EncodedRecord::encode`], on any
//! thread), then appended in order by one [`ShardWriter`], which writes under a temporary
//! name and renames the file into place only once its index and footer are synced.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use xxhash_rust::xxh3::xxh3_64;

use super::layout::{BlobEntry, Footer, Header, RecordEntry, MAX_PARAMS_LEN};
use crate::error::{FormatError, Result};
use crate::field::frames::{encode_chunks, FrameShape};
use crate::field::meta::RecordMeta;
use crate::field::spectrogram;
use crate::params::PackParams;

/// A record compressed and ready to append to a shard.
pub struct EncodedRecord {
    /// Its index entry (`first_blob` is set when appended).
    pub entry: RecordEntry,
    /// (stored bytes, decoded length) per blob: metadata, spectrogram, frame chunks.
    pub blobs: Vec<(Vec<u8>, u32)>,
}

impl EncodedRecord {
    /// Compresses one record. `frames` holds `frame_count` planar RGB frames of
    /// `width x height`; `spectrogram` is row-major `[mels][mel_frames]`.
    pub fn encode(
        meta: &RecordMeta,
        frames: &[u8],
        width: u32,
        height: u32,
        spectrogram_values: &[f32],
        mel_frames: u32,
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
            params.mels as usize * mel_frames as usize
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
        let chunk_frames = params.chunk_frames as usize;
        let chunks = encode_chunks(frames, shape, chunk_frames, &params.codec)?;
        for (blob, chunk) in chunks.into_iter().zip(frames.chunks(chunk_frames * frame_bytes)) {
            blobs.push((blob, chunk.len() as u32));
        }
        Ok(EncodedRecord {
            entry: RecordEntry {
                frames: frame_count as u32,
                width,
                height,
                mel_frames,
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
        (blobs + RecordEntry::LEN + BlobEntry::LEN * self.blobs.len()) as u64
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
    /// Bytes handed to the kernel's writeback so far (see [`ShardWriter::append`]).
    written_back: u64,
}

/// How much a shard grows between writeback requests.
const WRITEBACK_EVERY: u64 = 16 << 20;

/// Asks the kernel to start writing `len` bytes at `offset` to disk, without waiting.
/// Advisory: an error only means the final sync has more to do.
#[cfg(target_os = "linux")]
fn start_writeback(file: &File, offset: u64, len: u64) {
    use std::os::fd::AsRawFd;
    // SAFETY: the descriptor is open for as long as `file` is borrowed; the call reads no
    // memory of ours.
    unsafe {
        libc::sync_file_range(
            file.as_raw_fd(),
            offset as libc::off64_t,
            len as libc::off64_t,
            libc::SYNC_FILE_RANGE_WRITE,
        );
    }
}

#[cfg(not(target_os = "linux"))]
fn start_writeback(_file: &File, _offset: u64, _len: u64) {}

/// What a finished shard holds.
#[derive(Clone, Debug)]
pub struct ShardSummary {
    /// Records written.
    pub records: usize,
    /// The file's size.
    pub bytes: u64,
}

impl ShardWriter {
    /// Starts `path` (as its temporary name) with the header for `params`.
    pub fn create(path: &Path, params: &PackParams) -> Result<ShardWriter> {
        let tmp = crate::atomic_file::temp_path(path);
        let file = File::create(&tmp).map_err(FormatError::io(&tmp))?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        let params_json = serde_json::to_vec(params).expect("parameters serialise");
        assert!(params_json.len() <= MAX_PARAMS_LEN);
        let mut header = Vec::with_capacity(Header::LEN + params_json.len());
        Header::for_params(&params_json).write_to(&mut header);
        header.extend_from_slice(&params_json);
        out.write_all(&header).map_err(FormatError::io(&tmp))?;
        Ok(ShardWriter {
            path: path.to_path_buf(),
            tmp,
            out,
            pos: header.len() as u64,
            records: Vec::new(),
            blobs: Vec::new(),
            written_back: 0,
        })
    }

    /// Records appended so far.
    pub fn record_count(&self) -> usize {
        self.records.len()
    }

    /// Size the shard would have if finished now.
    pub fn bytes(&self) -> u64 {
        self.pos
            + (self.records.len() * RecordEntry::LEN + self.blobs.len() * BlobEntry::LEN + Footer::LEN) as u64
    }

    /// Appends a record's blobs after the previous record's.
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
        // Dirty pages are handed to the disk as the shard grows, so the sync that seals
        // it (a whole shard of them otherwise: seconds for 1 GiB on a slow disk, with the
        // writer stalled and the end of a pack waiting) has little left to do.
        if self.pos - self.written_back >= WRITEBACK_EVERY {
            self.out.flush().map_err(FormatError::io(&self.tmp))?;
            start_writeback(
                self.out.get_ref(),
                self.written_back,
                self.pos - self.written_back,
            );
            self.written_back = self.pos;
        }
        Ok(())
    }

    /// Writes the index and footer, syncs, and renames the shard into place.
    pub fn finish(mut self) -> Result<ShardSummary> {
        let mut index =
            Vec::with_capacity(self.records.len() * RecordEntry::LEN + self.blobs.len() * BlobEntry::LEN);
        for r in &self.records {
            r.write_to(&mut index);
        }
        for b in &self.blobs {
            b.write_to(&mut index);
        }
        let index_offset = self.pos;
        let file_len = index_offset + index.len() as u64 + Footer::LEN as u64;
        let mut footer = Vec::with_capacity(Footer::LEN);
        Footer::sealed(
            index_offset,
            self.records.len() as u32,
            self.blobs.len() as u32,
            xxh3_64(&index),
            file_len,
        )
        .write_to(&mut footer);
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
            FormatError::io(&tmp)(e)
        })?;
        Ok(ShardSummary {
            records: self.records.len(),
            bytes: file_len,
        })
    }
}
