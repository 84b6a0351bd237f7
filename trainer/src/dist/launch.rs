//! Where this process stands in a distributed run, read from the variables the launchers
//! set, so `gdt train` starts exactly as a PyTorch script does: torchrun (`RANK`,
//! `WORLD_SIZE`, `LOCAL_RANK`, `MASTER_ADDR`, `MASTER_PORT`, also what to set by hand) or
//! Slurm's `srun` with one task per GPU (`SLURM_PROCID`, `SLURM_NTASKS`, `SLURM_LOCALID`,
//! the first host of `SLURM_JOB_NODELIST`; `MASTER_PORT` or 29500). With neither, a run is
//! not distributed.

/// torchrun's default rendezvous port, and Slurm's here.
pub const DEFAULT_PORT: u16 = 29500;

/// This process's place in the run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Launch {
    /// Global rank, 0-based.
    pub rank: usize,
    /// Ranks in all.
    pub world: usize,
    /// Rank on this machine: the GPU it uses (`cuda:LOCAL_RANK`).
    pub local_rank: usize,
    /// Where rank 0 serves the rendezvous store.
    pub master_addr: String,
    /// Its port.
    pub master_port: u16,
}

/// Why the launch variables cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{variable}: {what}")]
pub struct LaunchError {
    /// The variable at fault.
    pub variable: &'static str,
    /// What is wrong with it.
    pub what: String,
}

impl Launch {
    /// Reads the launch from this process's environment.
    pub fn from_env() -> Result<Option<Launch>, LaunchError> {
        Launch::from_vars(|name| std::env::var(name).ok())
    }

    /// Reads the launch from `var` (the environment, or a test's map): torchrun's variables
    /// when `RANK` or `WORLD_SIZE` is set, else Slurm's when `SLURM_PROCID` is, else none.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Option<Launch>, LaunchError> {
        let number = |name: &'static str| -> Result<Option<usize>, LaunchError> {
            var(name)
                .map(|v| {
                    v.trim().parse::<usize>().map_err(|_| LaunchError {
                        variable: name,
                        what: format!("`{v}` is not a number"),
                    })
                })
                .transpose()
        };
        let port = || -> Result<u16, LaunchError> {
            match var("MASTER_PORT") {
                None => Ok(DEFAULT_PORT),
                Some(v) => v.trim().parse().map_err(|_| LaunchError {
                    variable: "MASTER_PORT",
                    what: format!("`{v}` is not a port"),
                }),
            }
        };
        let launch = if var("RANK").is_some() || var("WORLD_SIZE").is_some() {
            let need = |name: &'static str| {
                number(name)?.ok_or(LaunchError {
                    variable: name,
                    what: "not set (torchrun sets RANK, WORLD_SIZE and LOCAL_RANK together)".into(),
                })
            };
            Launch {
                rank: need("RANK")?,
                world: need("WORLD_SIZE")?,
                local_rank: number("LOCAL_RANK")?.unwrap_or(0),
                master_addr: var("MASTER_ADDR").unwrap_or_else(|| "127.0.0.1".into()),
                master_port: port()?,
            }
        } else if let Some(rank) = number("SLURM_PROCID")? {
            let nodes = var("SLURM_JOB_NODELIST").or_else(|| var("SLURM_NODELIST"));
            let master_addr = match var("MASTER_ADDR") {
                Some(a) => a,
                None => first_host(nodes.as_deref().unwrap_or("")).ok_or(LaunchError {
                    variable: "SLURM_JOB_NODELIST",
                    what: format!("no host in `{}`", nodes.unwrap_or_default()),
                })?,
            };
            Launch {
                rank,
                world: number("SLURM_NTASKS")?.ok_or(LaunchError {
                    variable: "SLURM_NTASKS",
                    what: "not set".into(),
                })?,
                local_rank: number("SLURM_LOCALID")?.unwrap_or(0),
                master_addr,
                master_port: port()?,
            }
        } else {
            return Ok(None);
        };
        if launch.world == 0 || launch.rank >= launch.world {
            return Err(LaunchError {
                variable: "RANK",
                what: format!(
                    "rank {} is not below the world size {}",
                    launch.rank, launch.world
                ),
            });
        }
        Ok(Some(launch))
    }

    /// The address Gloo binds on this machine: the master's on a single-machine run
    /// (loopback stays loopback), this host's name otherwise.
    pub fn local_address(&self) -> String {
        let loopback = matches!(self.master_addr.as_str(), "127.0.0.1" | "localhost" | "::1");
        if loopback {
            self.master_addr.clone()
        } else {
            std::env::var("HOSTNAME").unwrap_or_else(|_| self.master_addr.clone())
        }
    }
}

/// The first host of a Slurm node list: `node[03-05,9],gpu1` gives `node03`.
pub fn first_host(list: &str) -> Option<String> {
    let list = list.trim();
    let end = list.find([',', '[']).unwrap_or(list.len());
    let prefix = &list[..end];
    if list[end..].starts_with('[') {
        let inner = &list[end + 1..];
        let first = inner.split([',', '-', ']']).next()?;
        (!first.is_empty()).then(|| format!("{prefix}{first}"))
    } else {
        (!prefix.is_empty()).then(|| prefix.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn read(vars: &[(&str, &str)]) -> Result<Option<Launch>, LaunchError> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Launch::from_vars(|k| map.get(k).cloned())
    }

    #[test]
    fn torchrun_slurm_and_nothing() {
        assert_eq!(read(&[]).unwrap(), None);
        let torchrun = read(&[
            ("RANK", "3"),
            ("WORLD_SIZE", "16"),
            ("LOCAL_RANK", "3"),
            ("MASTER_ADDR", "node01"),
            ("MASTER_PORT", "29400"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(
            torchrun,
            Launch {
                rank: 3,
                world: 16,
                local_rank: 3,
                master_addr: "node01".into(),
                master_port: 29400
            }
        );
        let slurm = read(&[
            ("SLURM_PROCID", "9"),
            ("SLURM_NTASKS", "16"),
            ("SLURM_LOCALID", "1"),
            ("SLURM_JOB_NODELIST", "gpu[07-08,12]"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!((slurm.rank, slurm.world, slurm.local_rank), (9, 16, 1));
        assert_eq!(
            (slurm.master_addr.as_str(), slurm.master_port),
            ("gpu07", DEFAULT_PORT)
        );
    }

    #[test]
    fn bad_variables_are_named() {
        let e = read(&[("RANK", "1")]).unwrap_err();
        assert_eq!(e.variable, "WORLD_SIZE");
        let e = read(&[("RANK", "x"), ("WORLD_SIZE", "2")]).unwrap_err();
        assert!(e.to_string().contains("RANK: `x` is not a number"), "{e}");
        let e = read(&[("RANK", "2"), ("WORLD_SIZE", "2")]).unwrap_err();
        assert!(e.to_string().contains("not below the world size 2"), "{e}");
        let e = read(&[("RANK", "0"), ("WORLD_SIZE", "2"), ("MASTER_PORT", "99999")]).unwrap_err();
        assert_eq!(e.variable, "MASTER_PORT");
    }

    #[test]
    fn slurm_node_lists() {
        assert_eq!(first_host("node[03-05,9],gpu1").as_deref(), Some("node03"));
        assert_eq!(first_host("a1,a2").as_deref(), Some("a1"));
        assert_eq!(first_host("single").as_deref(), Some("single"));
        assert_eq!(first_host("").as_deref(), None);
    }
}
