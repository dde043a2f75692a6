//! What to start: a program, its arguments and environment, its place, where its
//! output goes and how it is stopped. Built step by step, then spawned once.

use std::ffi::{OsStr, OsString};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use crate::output::{self, LineFilter};
use crate::{Place, Ready, Stop, SuperviseError, Supervised};

/// A process to start. `Spec::new(program).args([...]).log(path).spawn()`.
pub struct Spec {
    pub(crate) name: String,
    program: PathBuf,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    cwd: Option<PathBuf>,
    pub(crate) place: Place,
    log: Option<PathBuf>,
    stdout: Option<PathBuf>,
    echo: Option<String>,
    on_stdout: Option<LineFilter>,
    stop: Stop,
}

impl std::fmt::Debug for Spec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spec")
            .field("name", &self.name)
            .field("program", &self.program)
            .field("args", &self.args)
            .field("place", &self.place)
            .field("log", &self.log)
            .finish_non_exhaustive()
    }
}

impl Spec {
    /// `program` (a path; see [`crate::which`]), named after its file in messages.
    pub fn new(program: impl Into<PathBuf>) -> Self {
        let program = program.into();
        let name = program
            .file_name()
            .map_or_else(|| program.display().to_string(), |name| name.to_string_lossy().into_owned());
        Self {
            name,
            program,
            args: Vec::new(),
            env: Vec::new(),
            cwd: None,
            place: Place::default(),
            log: None,
            stdout: None,
            echo: None,
            on_stdout: None,
            stop: Stop::default(),
        }
    }

    /// The name messages use (default: the program's file name).
    pub fn name(mut self, name: &str) -> Self {
        self.name = name.to_string();
        self
    }

    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.args.push(arg.as_ref().to_os_string());
        self
    }

    pub fn args<I: IntoIterator<Item = S>, S: AsRef<OsStr>>(mut self, args: I) -> Self {
        self.args.extend(args.into_iter().map(|arg| arg.as_ref().to_os_string()));
        self
    }

    pub fn env(mut self, name: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.env.push((name.as_ref().to_os_string(), value.as_ref().to_os_string()));
        self
    }

    pub fn envs<I, K, V>(mut self, vars: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        self.env.extend(
            vars.into_iter().map(|(name, value)| (name.as_ref().to_os_string(), value.as_ref().to_os_string())),
        );
        self
    }

    /// Its working directory.
    pub fn cwd(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cwd = Some(dir.into());
        self
    }

    /// Where it runs (namespace, CPUs, user, priority).
    pub fn place(mut self, place: Place) -> Self {
        self.place = place;
        self
    }

    /// Its log: stdout and stderr, appended. Without one it gets a temporary log,
    /// removed with the process (its tail still shows in every error).
    pub fn log(mut self, path: impl Into<PathBuf>) -> Self {
        self.log = Some(path.into());
        self
    }

    /// Stdout into its own file instead of the log (a program whose stdout is data,
    /// such as a JSON summary).
    pub fn stdout_to(mut self, path: impl Into<PathBuf>) -> Self {
        self.stdout = Some(path.into());
        self
    }

    /// Also copies every output line to our stderr, after `prefix`.
    pub fn echo(mut self, prefix: &str) -> Self {
        self.echo = Some(prefix.to_string());
        self
    }

    /// Shows each stdout line to `filter` first; the lines it answers `false` for stay
    /// out of the log (a child's reports to its supervisor).
    pub fn on_stdout(mut self, filter: impl FnMut(&str) -> bool + Send + 'static) -> Self {
        self.on_stdout = Some(Box::new(filter));
        self
    }

    /// How [`Supervised::stop`] and dropping stop it (default: SIGTERM, 5 s, SIGKILL).
    pub fn stop(mut self, stop: Stop) -> Self {
        self.stop = stop;
        self
    }

    /// Starts it.
    pub fn spawn(self) -> Result<Supervised, SuperviseError> {
        let io = |doing: &'static str| {
            let name = self.name.clone();
            move |source| SuperviseError::Io { name, doing, source }
        };
        let (log, log_dir) = match &self.log {
            Some(log) => (log.clone(), None),
            None => {
                let dir = tempfile::Builder::new()
                    .prefix(&format!("supervise-{}-", self.name))
                    .tempdir()
                    .map_err(io("making a directory for its log"))?;
                (dir.path().join("output.log"), Some(dir))
            }
        };
        let log_file = output::append(&log).map_err(io("opening its log"))?;
        let stdout_file = match &self.stdout {
            Some(path) => output::append(path).map_err(io("opening its stdout file"))?,
            None => log_file.try_clone().map_err(io("opening its log"))?,
        };
        let pipe_stdout = self.echo.is_some() || self.on_stdout.is_some();
        let pipe_stderr = self.echo.is_some();
        let mut command = self.place.command(&self.program);
        command.args(&self.args).envs(self.env.iter().map(|(name, value)| (name, value))).stdin(Stdio::null());
        if let Some(cwd) = &self.cwd {
            command.current_dir(cwd);
        }
        let stderr_file = log_file.try_clone().map_err(io("opening its log"))?;
        command.stdout(if pipe_stdout {
            Stdio::piped()
        } else {
            Stdio::from(stdout_file.try_clone().map_err(io("opening its log"))?)
        });
        command.stderr(if pipe_stderr {
            Stdio::piped()
        } else {
            Stdio::from(stderr_file.try_clone().map_err(io("opening its log"))?)
        });
        let mut child = command.spawn().map_err(io("starting it"))?;
        let mut copiers = Vec::new();
        if let Some(stream) = child.stdout.take() {
            copiers.push(output::copy_lines(stream, stdout_file, self.echo.clone(), self.on_stdout));
        }
        if let Some(stream) = child.stderr.take() {
            copiers.push(output::copy_lines(stream, stderr_file, self.echo.clone(), None));
        }
        Ok(Supervised::new(self.name, child, self.place, log, self.stdout, copiers, self.stop, log_dir))
    }

    /// Starts it and waits until `ready` holds: `NotReady` after `limit`, `Exited` when
    /// it exits first, each with the tail of its log (and it stopped).
    pub fn start(self, ready: &Ready, limit: Duration) -> Result<Supervised, SuperviseError> {
        let mut process = self.spawn()?;
        process.wait_ready(ready, limit)?;
        Ok(process)
    }

    /// [`Spec::start`] for async callers.
    pub async fn start_async(self, ready: &Ready, limit: Duration) -> Result<Supervised, SuperviseError> {
        let mut process = self.spawn()?;
        process.wait_ready_async(ready, limit).await?;
        Ok(process)
    }
}
