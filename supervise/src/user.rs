//! Which OS user runs a process.
//!
//! PostgreSQL will not run as root. When loadlab itself runs as root (CI does), such a
//! server and its tools run as an unprivileged system user (Debian's package creates
//! `postgres`), and the directories it writes are handed to that user.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

use nix::unistd::{Gid, Uid, User};

/// The identity a process runs under.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum RunAs {
    /// Whoever we are.
    #[default]
    Current,
    /// This unprivileged user (only root can switch to it).
    User { name: String, uid: Uid, gid: Gid },
}

impl RunAs {
    /// Ourselves, or `unprivileged_user` when we are root. `None` when we are root and
    /// that user does not exist.
    pub fn for_server(unprivileged_user: &str) -> Option<Self> {
        if !Uid::effective().is_root() {
            return Some(Self::Current);
        }
        let user = User::from_name(unprivileged_user).ok().flatten()?;
        Some(Self::User { name: user.name, uid: user.uid, gid: user.gid })
    }

    /// Makes `path` owned by this user (no-op for [`RunAs::Current`]).
    pub fn give(&self, path: &Path) -> std::io::Result<()> {
        match self {
            Self::Current => Ok(()),
            Self::User { uid, gid, .. } => std::os::unix::fs::chown(path, Some(uid.as_raw()), Some(gid.as_raw())),
        }
    }

    /// A command that runs `program` as this user.
    pub fn command(&self, program: &Path) -> Command {
        let mut command = Command::new(program);
        if let Self::User { uid, gid, .. } = self {
            command.uid(uid.as_raw()).gid(gid.as_raw());
        }
        self.set_environment(&mut command);
        command
    }

    /// Tools such as initdb read HOME and USER; give them this user's.
    pub(crate) fn set_environment(&self, command: &mut Command) {
        if let Self::User { name, .. } = self {
            command.env("USER", name).env("LOGNAME", name).env("HOME", "/tmp");
        }
    }
}
