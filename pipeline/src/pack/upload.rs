//! A pack into an object store (`gdt pack -o s3://bucket/k400`): the packer writes into a
//! local staging directory exactly as into a local dataset, and each shard, once sealed, is
//! uploaded (in parts when large) by a thread of its own while the packer goes on, then
//! deleted locally. After a shard's upload the pack state is uploaded too, so the store's
//! state names only shards that are there: an interrupted pack resumes from it, from any
//! machine. `dataset.json` goes last, so the dataset is visible only complete.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use gdt_formats::dataset::{shard_file_name, DATASET_FILE, REPORT_FILE, STATE_FILE};
use gdt_formats::storage::{ObjectDir, StorageError};

use super::PackError;

/// What the uploader is asked to bring the store to: shards `..shards` complete, then this
/// state.
struct Job {
    shards: usize,
    state: Vec<u8>,
}

/// Uploads sealed shards and the state behind the packer, in order.
pub(super) struct Uploader {
    objects: Arc<ObjectDir>,
    staging: PathBuf,
    jobs: Option<SyncSender<Job>>,
    thread: Option<JoinHandle<()>>,
    failed: Arc<Mutex<Option<StorageError>>>,
}

impl Uploader {
    /// An uploader from `staging` to `objects`, where shards `..uploaded` are already.
    pub(super) fn new(objects: Arc<ObjectDir>, staging: &Path, uploaded: usize) -> Uploader {
        // One job waits while one uploads: the packer runs at most a shard ahead of the
        // network, so staging holds at most about three shards.
        let (tx, rx) = sync_channel::<Job>(1);
        let failed = Arc::new(Mutex::new(None));
        let thread = {
            let (objects, staging, failed) = (objects.clone(), staging.to_path_buf(), failed.clone());
            std::thread::Builder::new()
                .name("gdt-pack-upload".into())
                .spawn(move || {
                    let mut uploaded = uploaded;
                    for job in rx {
                        if let Err(e) = upload(&objects, &staging, &mut uploaded, &job) {
                            *failed.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                            return;
                        }
                    }
                })
                .expect("starting the upload thread")
        };
        Uploader {
            objects,
            staging: staging.to_path_buf(),
            jobs: Some(tx),
            thread: Some(thread),
            failed,
        }
    }

    fn failure(&self) -> Result<(), PackError> {
        match self.failed.lock().unwrap_or_else(|p| p.into_inner()).take() {
            Some(e) => Err(e.into()),
            None => Ok(()),
        }
    }

    /// Asks for shards `..shards` and then `state` to be uploaded; returns at once unless a
    /// job is waiting already. An upload that failed is reported here (or at `finish`).
    pub(super) fn publish(&mut self, shards: usize, state: Vec<u8>) -> Result<(), PackError> {
        self.failure()?;
        let sent = self
            .jobs
            .as_ref()
            .map(|tx| tx.send(Job { shards, state }).is_ok());
        if sent != Some(true) {
            // The thread stopped: it left why.
            self.wait();
            self.failure()?;
        }
        Ok(())
    }

    /// Waits for every upload asked for.
    fn wait(&mut self) {
        self.jobs = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }

    /// Uploads what is left, then the report, `dataset.json` (last of the dataset's files)
    /// and the final state; empties the staging directory.
    pub(super) fn finish(mut self, shards: usize, state: Vec<u8>) -> Result<(), PackError> {
        self.publish(shards, Vec::new())?;
        self.wait();
        self.failure()?;
        for name in [REPORT_FILE, DATASET_FILE] {
            self.objects.upload(name, &self.staging.join(name))?;
        }
        self.objects.write(STATE_FILE, state)?;
        let _ = std::fs::remove_dir_all(&self.staging);
        Ok(())
    }
}

impl Drop for Uploader {
    /// A pack that stops (an error, Ctrl-C) still finishes the uploads it asked for, so the
    /// store's state is as far along as it can be for the resume.
    fn drop(&mut self) {
        self.wait();
    }
}

/// Uploads shards `uploaded..job.shards` (deleting each local copy once it is up), then the
/// state, if the job has one.
fn upload(objects: &ObjectDir, staging: &Path, uploaded: &mut usize, job: &Job) -> Result<(), StorageError> {
    while *uploaded < job.shards {
        let name = shard_file_name(*uploaded);
        let path = staging.join(&name);
        objects.upload(&name, &path)?;
        let _ = std::fs::remove_file(&path);
        *uploaded += 1;
    }
    if !job.state.is_empty() {
        objects.write(STATE_FILE, job.state.clone())?;
    }
    Ok(())
}
