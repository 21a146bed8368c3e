//! What "runs" in a pod for exec and attach: a handful of programs modelled as state machines
//! that react to stdin and time, so the WebSocket plumbing stays separate and these stay testable.

use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;

/// How a program ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Exit {
    Success,
    Code(i32),
    /// The executable does not exist in the container.
    NotFound(String),
}

/// Something a program does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Action {
    Stdout(Bytes),
    Stderr(Bytes),
    Exit(Exit),
}

#[derive(Debug)]
enum Kind {
    /// Finished output: print, then exit.
    Immediate(Vec<Action>),
    /// `cat`: stdout mirrors stdin until stdin closes.
    Cat,
    /// `tar x…` (kubectl cp into the pod): swallows stdin until it closes.
    Drain,
    /// `sleep N`: exits at the instant, or never.
    Sleep(Option<Instant>),
    /// `head -c N`: N bytes of stdout, streamed in pieces.
    Emit(u64),
    /// `sh` without `-c`: reads command lines from stdin.
    Shell { line: Vec<u8> },
    /// attach without stdin: the main process keeps logging.
    Ticker { next: Instant, count: u64 },
}

/// A running program.
#[derive(Debug)]
pub(crate) struct Program {
    kind: Kind,
    tty: bool,
}

const EMIT_PIECE: u64 = 32 * 1024;
const TICK: Duration = Duration::from_millis(100);

fn out(text: impl Into<String>) -> Action {
    Action::Stdout(Bytes::from(text.into()))
}

fn immediate(mut actions: Vec<Action>, exit: Exit) -> Kind {
    actions.push(Action::Exit(exit));
    Kind::Immediate(actions)
}

impl Program {
    /// The program `command` (argv) names, as run in pod `pod`.
    pub(crate) fn exec(command: &[String], pod: &str, tty: bool) -> Self {
        Self {
            kind: parse(command, pod),
            tty,
        }
    }

    /// What attach connects to: an echoing process when stdin is attached, a logger otherwise.
    pub(crate) fn attach(stdin: bool, tty: bool) -> Self {
        let kind = if stdin {
            Kind::Cat
        } else {
            Kind::Ticker {
                next: Instant::now(),
                count: 0,
            }
        };
        Self { kind, tty }
    }

    pub(crate) fn start(&mut self) -> Vec<Action> {
        match &mut self.kind {
            Kind::Immediate(actions) => std::mem::take(actions),
            Kind::Shell { .. } if self.tty => vec![out("# ")],
            _ => Vec::new(),
        }
    }

    pub(crate) fn on_stdin(&mut self, data: &[u8]) -> Vec<Action> {
        match &mut self.kind {
            Kind::Cat => vec![Action::Stdout(Bytes::copy_from_slice(data))],
            Kind::Shell { line } => {
                let mut actions = Vec::new();
                if self.tty {
                    // A terminal echoes what is typed, Enter (CR) as a newline (ICRNL).
                    let echoed: Vec<u8> = data
                        .iter()
                        .map(|&b| if b == b'\r' { b'\n' } else { b })
                        .collect();
                    actions.push(Action::Stdout(Bytes::from(echoed)));
                }
                for &byte in data {
                    if byte == b'\n' || byte == b'\r' {
                        let text = String::from_utf8_lossy(line).into_owned();
                        line.clear();
                        actions.extend(run_line(&text, self.tty));
                        if matches!(actions.last(), Some(Action::Exit(_))) {
                            break;
                        }
                    } else {
                        line.push(byte);
                    }
                }
                actions
            }
            _ => Vec::new(),
        }
    }

    pub(crate) fn on_stdin_closed(&mut self) -> Vec<Action> {
        match self.kind {
            Kind::Cat | Kind::Drain | Kind::Shell { .. } => vec![Action::Exit(Exit::Success)],
            _ => Vec::new(),
        }
    }

    /// When the program wants [`Program::on_deadline`] called, if ever.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        match self.kind {
            Kind::Sleep(at) => at,
            Kind::Emit(_) => Some(Instant::now()),
            Kind::Ticker { next, .. } => Some(next),
            _ => None,
        }
    }

    pub(crate) fn on_deadline(&mut self) -> Vec<Action> {
        match &mut self.kind {
            Kind::Sleep(_) => vec![Action::Exit(Exit::Success)],
            Kind::Emit(0) => vec![Action::Exit(Exit::Success)],
            Kind::Emit(left) => {
                let piece = (*left).min(EMIT_PIECE);
                *left -= piece;
                vec![Action::Stdout(Bytes::from(vec![
                    b'x';
                    usize::try_from(piece)
                        .unwrap_or(0)
                ]))]
            }
            Kind::Ticker { next, count } => {
                *next += TICK;
                *count += 1;
                vec![out(format!("attached output line {count}\n"))]
            }
            _ => Vec::new(),
        }
    }
}

/// One line typed into the interactive shell.
fn run_line(line: &str, tty: bool) -> Vec<Action> {
    let words = split_words(line);
    let mut actions = match words.first().map(String::as_str) {
        None => Vec::new(),
        Some("exit") => {
            let code = words.get(1).and_then(|c| c.parse().ok()).unwrap_or(0);
            return vec![Action::Exit(if code == 0 {
                Exit::Success
            } else {
                Exit::Code(code)
            })];
        }
        Some(_) => match parse(&words, "shell") {
            Kind::Immediate(actions) => actions
                .into_iter()
                .filter(|a| !matches!(a, Action::Exit(_)))
                .collect(),
            _ => vec![Action::Stderr(Bytes::from(format!(
                "sh: {}: not supported interactively\n",
                words[0]
            )))],
        },
    };
    if tty {
        actions.push(out("# "));
    }
    actions
}

fn parse(command: &[String], pod: &str) -> Kind {
    let args: Vec<&str> = command.iter().skip(1).map(String::as_str).collect();
    let Some(program) = command.first() else {
        return immediate(Vec::new(), Exit::NotFound(String::new()));
    };
    let base = program.rsplit('/').next().unwrap_or(program);
    match (base, args.as_slice()) {
        ("echo", ["-n", rest @ ..]) => immediate(vec![out(rest.join(" "))], Exit::Success),
        ("echo", rest) => immediate(vec![out(format!("{}\n", rest.join(" ")))], Exit::Success),
        ("cat", []) | ("cat", ["-"]) => Kind::Cat,
        ("cat", ["/etc/hostname"]) | ("hostname", []) => immediate(vec![out(format!("{pod}\n"))], Exit::Success),
        ("cat", [file, ..]) => immediate(
            vec![Action::Stderr(Bytes::from(format!("cat: {file}: No such file or directory\n")))],
            Exit::Code(1),
        ),
        ("true", _) => immediate(Vec::new(), Exit::Success),
        ("false", _) => immediate(Vec::new(), Exit::Code(1)),
        ("pwd", _) => immediate(vec![out("/\n")], Exit::Success),
        ("ls", _) => immediate(vec![out("bin\ndev\netc\nhome\nproc\nroot\nsys\ntmp\nusr\nvar\n")], Exit::Success),
        ("env", _) => immediate(vec![out(format!("HOSTNAME={pod}\nPATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\nHOME=/root\n"))], Exit::Success),
        ("sleep", [seconds, ..]) => Kind::Sleep(
            seconds.parse::<f64>().ok().filter(|s| s.is_finite() && *s >= 0.0).map(|s| Instant::now() + Duration::from_secs_f64(s.min(1e9))),
        ),
        ("head", ["-c", count, ..]) => count.parse().map_or_else(|_| immediate(Vec::new(), Exit::Code(1)), Kind::Emit),
        ("tar", [flags, ..]) if flags.contains('x') => Kind::Drain,
        // An empty archive: two zero blocks.
        ("tar", [flags, ..]) if flags.contains('c') => immediate(vec![Action::Stdout(Bytes::from(vec![0u8; 1024]))], Exit::Success),
        ("sh" | "bash" | "ash", ["-c", script, ..]) => script_kind(script, pod),
        ("sh" | "bash" | "ash", []) => Kind::Shell { line: Vec::new() },
        ("tail", [.., "-f", _] | ["-f", ..]) => Kind::Sleep(None),
        (other, _) => immediate(Vec::new(), Exit::NotFound(other.to_owned())),
    }
}

/// `sh -c SCRIPT`: `exit N`, or one simple command.
fn script_kind(script: &str, pod: &str) -> Kind {
    let words = split_words(script);
    match words.as_slice() {
        [exit] if exit == "exit" => immediate(Vec::new(), Exit::Success),
        [exit, code] if exit == "exit" => match code.parse::<i32>() {
            Ok(0) => immediate(Vec::new(), Exit::Success),
            Ok(code) => immediate(Vec::new(), Exit::Code(code)),
            Err(_) => immediate(
                vec![Action::Stderr(Bytes::from(format!(
                    "sh: exit: Illegal number: {code}\n"
                )))],
                Exit::Code(2),
            ),
        },
        [] => immediate(Vec::new(), Exit::Success),
        _ => match parse(&words, pod) {
            Kind::Immediate(actions)
                if matches!(actions.last(), Some(Action::Exit(Exit::NotFound(_)))) =>
            {
                immediate(
                    vec![Action::Stderr(Bytes::from(format!(
                        "sh: 1: {}: not found\n",
                        words[0]
                    )))],
                    Exit::Code(127),
                )
            }
            kind => kind,
        },
    }
}

/// Whitespace-separated words with single and double quotes honoured.
fn split_words(text: &str) -> Vec<String> {
    let (mut words, mut current, mut quote, mut in_word) = (Vec::new(), String::new(), None, false);
    for c in text.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => current.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut current));
                    in_word = false;
                }
            }
            (None, c) => {
                current.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(current);
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| (*w).to_owned()).collect()
    }

    fn run(words: &[&str]) -> Vec<Action> {
        Program::exec(&argv(words), "web", false).start()
    }

    #[test]
    fn one_shot_commands() {
        assert_eq!(
            run(&["echo", "hello", "world"]),
            vec![out("hello world\n"), Action::Exit(Exit::Success)]
        );
        assert_eq!(
            run(&["sh", "-c", "exit 3"]),
            vec![Action::Exit(Exit::Code(3))]
        );
        assert_eq!(
            run(&["/bin/sh", "-c", "echo 'a b'"]),
            vec![out("a b\n"), Action::Exit(Exit::Success)]
        );
        assert_eq!(
            run(&["nope"]),
            vec![Action::Exit(Exit::NotFound("nope".into()))]
        );
        assert_eq!(
            run(&["hostname"]),
            vec![out("web\n"), Action::Exit(Exit::Success)]
        );
        assert!(matches!(
            run(&["sh", "-c", "nope"]).last(),
            Some(Action::Exit(Exit::Code(127)))
        ));
    }

    #[test]
    fn cat_mirrors_stdin_until_closed() {
        let mut cat = Program::exec(&argv(&["cat"]), "web", false);
        assert!(cat.start().is_empty());
        assert_eq!(
            cat.on_stdin(b"abc"),
            vec![Action::Stdout(Bytes::from_static(b"abc"))]
        );
        assert_eq!(cat.on_stdin_closed(), vec![Action::Exit(Exit::Success)]);
    }

    #[test]
    fn sleep_and_emit_use_deadlines() {
        let mut sleep = Program::exec(&argv(&["sleep", "3600"]), "web", false);
        assert!(sleep
            .deadline()
            .is_some_and(|d| d > Instant::now() + Duration::from_secs(3000)));
        assert!(Program::exec(&argv(&["sleep", "infinity"]), "web", false)
            .deadline()
            .is_none());
        assert_eq!(sleep.on_deadline(), vec![Action::Exit(Exit::Success)]);
        let mut head = Program::exec(&argv(&["head", "-c", "40000", "/dev/zero"]), "web", false);
        let sizes: Vec<usize> = (0..3)
            .flat_map(|_| head.on_deadline())
            .map(|a| match a {
                Action::Stdout(b) => b.len(),
                _ => 0,
            })
            .collect();
        assert_eq!(sizes, vec![32768, 7232, 0]);
    }

    #[test]
    fn interactive_shell() {
        let mut shell = Program::exec(&argv(&["sh"]), "web", true);
        assert_eq!(shell.start(), vec![out("# ")]);
        let actions = shell.on_stdin(b"echo hi\r");
        assert!(actions.contains(&out("hi\n")));
        assert_eq!(
            shell.on_stdin(b"exit 4\r").last(),
            Some(&Action::Exit(Exit::Code(4)))
        );
    }

    #[test]
    fn words_and_quotes() {
        assert_eq!(
            split_words(r#"echo "a  b" 'c' d"#),
            vec!["echo", "a  b", "c", "d"]
        );
        assert_eq!(split_words("  "), Vec::<String>::new());
        assert_eq!(split_words("x ''"), vec!["x", ""]);
    }
}
