//! Which OS user runs a server that refuses root.
//!
//! PostgreSQL will not run as root. When loadlab itself runs as root (CI does), the
//! server and its tools run as the `postgres` system user that Debian's package
//! creates, and the data directory is handed to that user.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

use nix::unistd::{Gid, Uid, User};

/// The identity to run a server process under.
#[derive(Clone, Debug)]
pub(crate) enum RunAs {
    /// Not root: run as ourselves.
    Current,
    /// Root: run as this unprivileged user.
    User { name: String, uid: Uid, gid: Gid },
}

impl RunAs {
    /// Ourselves, or `unprivileged_user` when we are root. `None` when we are root and
    /// that user does not exist.
    pub(crate) fn for_server(unprivileged_user: &str) -> Option<Self> {
        if !Uid::effective().is_root() {
            return Some(Self::Current);
        }
        let user = User::from_name(unprivileged_user).ok().flatten()?;
        Some(Self::User { name: user.name, uid: user.uid, gid: user.gid })
    }

    /// Makes `path` owned by the server's user (no-op when not root).
    pub(crate) fn give(&self, path: &Path) -> std::io::Result<()> {
        match self {
            Self::Current => Ok(()),
            Self::User { uid, gid, .. } => std::os::unix::fs::chown(path, Some(uid.as_raw()), Some(gid.as_raw())),
        }
    }

    /// A command that runs `program` as the server's user.
    pub(crate) fn command(&self, program: &Path) -> Command {
        let mut command = Command::new(program);
        if let Self::User { uid, gid, name } = self {
            command.uid(uid.as_raw()).gid(gid.as_raw());
            // Tools such as initdb read HOME and USER; give them the server user's.
            command.env("USER", name).env("LOGNAME", name).env("HOME", "/tmp");
        }
        command
    }
}
