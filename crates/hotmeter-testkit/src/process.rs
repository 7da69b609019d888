//! Child processes a test starts, stopped when their guard drops.
//!
//! Owns: spawning, naming and stopping the children it holds. Must not:
//! let a child outlive the guard, on a pass or a panic alike.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Child processes, each stopped and reaped when the guard drops
/// (including on panic), in the order they were started.
///
/// [`spawn`](Self::spawn)ed children are killed (`SIGKILL`);
/// [`spawn_group`](Self::spawn_group)ed ones run in a process group of
/// their own that is sent `SIGTERM`, given 15 s, then `SIGKILL`, so a
/// script's own children go with it.
#[derive(Debug, Default)]
pub struct ChildGuard {
    children: Vec<Guarded>,
}

#[derive(Debug)]
struct Guarded {
    name: String,
    child: Child,
    /// Started in its own process group, stopped as a group.
    group: bool,
}

impl ChildGuard {
    /// An empty guard.
    pub fn new() -> ChildGuard {
        ChildGuard::default()
    }

    /// Starts `cmd` as `name` (for messages and [`kill`](Self::kill));
    /// panics naming it when it cannot start.
    pub fn spawn(&mut self, name: &str, cmd: &mut Command) -> &mut Child {
        self.start(name, cmd, false)
    }

    /// As [`spawn`](Self::spawn), in a process group of its own: on drop
    /// the whole group is sent `SIGTERM`, then `SIGKILL` after 15 s.
    pub fn spawn_group(&mut self, name: &str, cmd: &mut Command) -> &mut Child {
        use std::os::unix::process::CommandExt;
        self.start(name, cmd.process_group(0), true)
    }

    fn start(&mut self, name: &str, cmd: &mut Command, group: bool) -> &mut Child {
        let child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {name} ({cmd:?}): {e}"));
        self.children.push(Guarded { name: name.to_owned(), child, group });
        &mut self.children.last_mut().unwrap().child
    }

    /// The child started as `name`; panics when there is none.
    pub fn child(&mut self, name: &str) -> &mut Child {
        let i = self.position(name);
        &mut self.children[i].child
    }

    /// Stops the child started as `name` now, as a drop would, and forgets it.
    pub fn kill(&mut self, name: &str) {
        let i = self.position(name);
        stop(&mut self.children.remove(i));
    }

    fn position(&self, name: &str) -> usize {
        self.children.iter().position(|g| g.name == name).unwrap_or_else(|| panic!("no process {name}"))
    }
}

/// The lines of `output` (a child's piped stdout or stderr) on a channel,
/// read on a thread of their own to the end (after the receiver is gone
/// too), so the child never blocks on a full pipe.
pub fn output_lines(output: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(output).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    rx
}

fn stop(guarded: &mut Guarded) {
    let child = &mut guarded.child;
    if guarded.group {
        let group = format!("-{}", child.id());
        let signal = |s: &str| Command::new("kill").args([s, "--", &group]).stderr(Stdio::null()).status();
        let _ = signal("-TERM");
        let deadline = Instant::now() + Duration::from_secs(15);
        while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = signal("-KILL");
    } else {
        // std's `Child::kill` sends SIGKILL on Unix.
        let _ = child.kill();
    }
    let _ = child.wait();
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        for guarded in &mut self.children {
            stop(guarded);
        }
    }
}
