//! Process limits a server needs raised before it accepts connections.
//!
//! Every client connection is an open file. Linux starts processes with a
//! soft open-files limit (often 1024) far below the hard limit the operator
//! granted, so a receiver holding tens of thousands of SSE or WebSocket
//! clients would refuse connections long before it runs out of anything
//! real. Raising the soft limit up to the hard limit needs no privilege.

use nix::sys::resource::{Resource, getrlimit, setrlimit};

/// The open-files limit after [`raise_open_files_limit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenFilesLimit {
    /// The soft limit now in force.
    pub soft: u64,
    /// The hard limit, the most the soft one can be raised to.
    pub hard: u64,
}

/// This process's open-files limit as it stands.
pub fn open_files_limit() -> Result<OpenFilesLimit, nix::Error> {
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    Ok(OpenFilesLimit { soft, hard })
}

/// Raises this process's soft open-files limit to its hard limit and returns
/// both. On failure the limit stays as it was and the error says why.
pub fn raise_open_files_limit() -> Result<OpenFilesLimit, nix::Error> {
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    if soft < hard {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard)?;
    }
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    Ok(OpenFilesLimit { soft, hard })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_soft_limit_reaches_the_hard_limit() {
        let limit = raise_open_files_limit().expect("raise the limit");
        assert_eq!(limit.soft, limit.hard);
        let (soft, _) = getrlimit(Resource::RLIMIT_NOFILE).expect("read the limit");
        assert_eq!(soft, limit.hard);
    }
}
