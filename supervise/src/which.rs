//! Finding a program: on `PATH`, then in the sbin directories a user's `PATH` may
//! lack (`ip`, `tc` and `nginx` live there on Debian).

use std::path::PathBuf;

const SBIN: [&str; 3] = ["/usr/local/sbin", "/usr/sbin", "/sbin"];

/// `program`'s path: itself when it names a path, else the first on `PATH` or in
/// the sbin directories.
pub fn which(program: &str) -> Option<PathBuf> {
    if program.contains('/') {
        return Some(PathBuf::from(program)).filter(|path| path.is_file());
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(SBIN.map(PathBuf::from))
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

/// The first of `names` that [`which`] finds (a program installed under different
/// names: Debian's `prometheus-pushgateway` is nixpkgs' `pushgateway`).
pub fn which_any(names: &[&str]) -> Option<PathBuf> {
    names.iter().find_map(|name| which(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn programs_are_found_on_the_path_and_paths_are_checked() {
        assert!(which("sh").is_some_and(|path| path.is_file()));
        assert_eq!(which("/bin/sh"), Some(PathBuf::from("/bin/sh")));
        assert_eq!(which("/no/such/program"), None);
        assert_eq!(which_any(&["no-such-program-here", "sh"]), which("sh"));
    }
}
