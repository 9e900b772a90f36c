//! The README's curl session ("The API, with curl"), run as written against the running system:
//! every `$ ` command of its console blocks (curl, the token commands of `sagactl`, variable
//! assignments) is run in one bash session, in order, with `localhost:808x` pointed at this
//! system's services and `AUTH_JWT_SECRET` set to the secret the services verify; the output
//! the README shows is checked against the real one: the status line and headers shown, and
//! every `"key": value` pair shown (timestamps are skipped, a value cut with `…` is compared up
//! to the cut, and the ids the services generated stand in for the README's). A command that
//! only reads is repeated until its output matches, for the saga moves on by itself ("40 ms
//! later…"); a command that changes something runs once. Commands of other programs
//! (`scripts/run-local.sh`, …) are not run.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::Duration;

use common::PATIENCE;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use testkit::system::{Svc, System, SystemConfig, workspace_root};

/// The README section that is the session.
const SECTION: &str = "## The API, with curl";

/// Ends each command's output in the shell's stdout, followed by the exit status.
const MARKER: &str = "__readme_session_command_done__";

/// One `$ ` command of the README and the output it shows.
#[derive(Debug)]
struct Step {
    command: String,
    shown: Vec<String>,
}

/// The commands of the console blocks of the session's section, in order.
fn session(readme: &str) -> Vec<Step> {
    let start = readme
        .find(SECTION)
        .unwrap_or_else(|| panic!("the README has a section {SECTION:?}"));
    let section = &readme[start + SECTION.len()..];
    let section = &section[..section.find("\n## ").unwrap_or(section.len())];
    let mut steps: Vec<Step> = Vec::new();
    let mut in_console = false;
    let mut continued = false;
    for line in section.lines() {
        if line.trim_start().starts_with("```") {
            in_console = !in_console && line.trim() == "```console";
            continued = false;
            continue;
        }
        if !in_console {
            continue;
        }
        if continued {
            let step = steps.last_mut().expect("a command being continued");
            step.command.push('\n');
            step.command.push_str(line);
            continued = line.ends_with('\\');
            continue;
        }
        match line.strip_prefix("$ ") {
            Some(command) => {
                steps.push(Step {
                    command: command.to_owned(),
                    shown: Vec::new(),
                });
                continued = command.ends_with('\\');
            }
            None => match steps.last_mut() {
                Some(step) => step.shown.push(line.to_owned()),
                None => panic!("README output {line:?} before any command"),
            },
        }
    }
    steps
}

/// Whether the session's command is one this test runs: curl, the operator CLI, or a shell
/// variable being set (from either).
fn is_runnable(command: &str) -> bool {
    let first = command.split_whitespace().next().unwrap_or_default();
    let assignment = first
        .split_once('=')
        .is_some_and(|(name, _)| is_variable_name(name));
    first == "curl"
        || first == "export"
        || assignment
        || (first == "cargo" && command.contains("-p sagactl"))
}

fn is_variable_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|character| character.is_ascii_alphanumeric() || character == '_')
        && !name.starts_with(|character: char| character.is_ascii_digit())
}

/// Whether the command changes nothing, so that it may be repeated until the system has
/// caught up with the README.
fn only_reads(command: &str) -> bool {
    let words: Vec<&str> = command.split_whitespace().collect();
    let method = words
        .windows(2)
        .find(|pair| pair[0] == "-X" || pair[0] == "--request")
        .map(|pair| pair[1].trim_matches('\'').trim_matches('"'));
    let sends = words
        .iter()
        .any(|word| word.starts_with("-d") || word.starts_with("--data") || *word == "--json");
    words.first() == Some(&"curl") && matches!(method, None | Some("GET")) && !sends
}

/// Every UUID in `text`.
fn uuids_in(text: &str) -> Vec<String> {
    text.split(|character: char| !(character.is_ascii_hexdigit() || character == '-'))
        .filter(|token| token.len() == 36 && uuid::Uuid::parse_str(token).is_ok())
        .map(str::to_owned)
        .collect()
}

fn looks_like_timestamp(value: &str) -> bool {
    let bytes = value.as_bytes();
    bytes.len() >= 19
        && bytes[..4].iter().all(u8::is_ascii_digit)
        && bytes[4] == b'-'
        && bytes[10] == b'T'
}

/// A JSON string starting at `start` (a `"`): its raw content and the index after it.
fn read_string(chars: &[char], start: usize) -> (String, usize) {
    let mut content = String::new();
    let mut index = start + 1;
    while index < chars.len() && chars[index] != '"' {
        if chars[index] == '\\' && index + 1 < chars.len() {
            content.push(chars[index]);
            index += 1;
        }
        content.push(chars[index]);
        index += 1;
    }
    (content, index + 1)
}

fn skip_spaces(chars: &[char], mut index: usize) -> usize {
    while index < chars.len() && chars[index].is_whitespace() {
        index += 1;
    }
    index
}

/// Every `"key": scalar` of `text` (JSON, or JSON with elisions as the README writes it), with
/// strings unquoted and other scalars as written.
fn scalar_pairs(text: &str) -> Vec<(String, String)> {
    let chars: Vec<char> = text.chars().collect();
    let mut pairs = Vec::new();
    let mut index = 0;
    while index < chars.len() {
        if chars[index] != '"' {
            index += 1;
            continue;
        }
        let (key, after_key) = read_string(&chars, index);
        let colon = skip_spaces(&chars, after_key);
        if chars.get(colon) != Some(&':') {
            index = after_key;
            continue;
        }
        let value = skip_spaces(&chars, colon + 1);
        match chars.get(value) {
            Some('"') => {
                let (text, after) = read_string(&chars, value);
                pairs.push((key, text));
                index = after;
            }
            Some(first) if first.is_ascii_alphanumeric() || *first == '-' => {
                let end = (value..chars.len())
                    .find(|&at| matches!(chars[at], ',' | '}' | ']') || chars[at].is_whitespace())
                    .unwrap_or(chars.len());
                pairs.push((key, chars[value..end].iter().collect()));
                index = end;
            }
            _ => index = value,
        }
    }
    pairs
}

/// Output split into a status code, headers and a body: the first two only when it starts
/// with an HTTP status line (`curl -i`).
struct Answer {
    status: Option<String>,
    headers: Vec<(String, String)>,
    body: String,
}

fn answer(lines: &[String]) -> Answer {
    let lines: Vec<&str> = lines
        .iter()
        .map(|line| line.trim_end_matches('\r'))
        .collect();
    let Some(status_line) = lines.first().filter(|line| line.starts_with("HTTP/")) else {
        return Answer {
            status: None,
            headers: Vec::new(),
            body: lines.join("\n"),
        };
    };
    let status = status_line.split_whitespace().nth(1).map(str::to_owned);
    let blank = lines
        .iter()
        .position(|line| line.trim().is_empty())
        .unwrap_or(lines.len());
    let headers = lines[1..blank]
        .iter()
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    Answer {
        status,
        headers,
        body: lines[blank.min(lines.len())..].join("\n"),
    }
}

/// README ids → the ids this run generated (a README id never seen in an answer maps to
/// itself: the reader chose it, as a customer id).
type Ids = BTreeMap<String, String>;

fn substitute(text: &str, ids: &Ids) -> String {
    ids.iter().fold(text.to_owned(), |text, (readme, real)| {
        text.replace(readme, real)
    })
}

/// The part of an elided value (`Payment of 25.00 received for order 01a20ca2-…`) that can be
/// compared: up to the `…`, without the partial id before it.
fn before_elision(value: &str) -> &str {
    let cut = &value[..value.find('…').unwrap_or(value.len())];
    cut.trim_end_matches(|character: char| character.is_ascii_hexdigit() || character == '-')
}

/// Compares what the README shows with what the command printed; on success returns the ids
/// learnt from it.
fn compare(shown: &[String], printed: &[String], ids: &Ids) -> Result<Ids, String> {
    let shown = answer(shown);
    let printed = answer(printed);
    if shown.status.is_some() && shown.status != printed.status {
        return Err(format!(
            "status {:?}, the README shows {:?}",
            printed.status, shown.status
        ));
    }
    let mut ids = ids.clone();
    let actual = scalar_pairs(&printed.body);
    for (key, value) in scalar_pairs(&shown.body) {
        if looks_like_timestamp(&value) {
            continue;
        }
        if value.contains('…') {
            let prefix = substitute(before_elision(&value), &ids);
            if !actual
                .iter()
                .any(|(candidate, real)| *candidate == key && real.starts_with(&prefix))
            {
                return Err(format!("no {key:?} starting with {prefix:?}"));
            }
            continue;
        }
        let unknown_id = uuids_in(&value)
            .into_iter()
            .find(|readme| value == *readme && !ids.contains_key(readme));
        if let Some(readme) = unknown_id {
            let taken: Vec<&String> = ids.values().collect();
            let real = actual
                .iter()
                .find(|(candidate, real)| {
                    *candidate == key && uuids_in(real).len() == 1 && !taken.contains(&real)
                })
                .map(|(_, real)| real.clone())
                .ok_or_else(|| format!("no new id for {key:?} (the README shows {readme})"))?;
            ids.insert(readme, real);
            continue;
        }
        let expected = substitute(&value, &ids);
        if !actual
            .iter()
            .any(|(candidate, real)| *candidate == key && *real == expected)
        {
            return Err(format!("no {key:?}: {expected:?}"));
        }
    }
    for (name, value) in &shown.headers {
        let expected = substitute(value, &ids);
        let real = printed
            .headers
            .iter()
            .find(|(candidate, _)| candidate == name)
            .map(|(_, real)| real);
        if real != Some(&expected) {
            return Err(format!(
                "header {name}: {real:?}, the README shows {expected:?}"
            ));
        }
    }
    Ok(ids)
}

/// One bash process for the whole session, so that variables set by one command are seen by
/// the next.
struct Shell {
    _child: Child,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
    stderr_path: std::path::PathBuf,
}

impl Shell {
    fn start(stderr_path: std::path::PathBuf) -> Shell {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let cargo_dir = std::path::Path::new(&cargo)
            .parent()
            .map(|dir| dir.display().to_string())
            .unwrap_or_default();
        let path = format!("{cargo_dir}:{}", std::env::var("PATH").unwrap_or_default());
        let stderr = std::fs::File::create(&stderr_path).unwrap();
        let mut child = Command::new("bash")
            .args(["--noprofile", "--norc"])
            .current_dir(workspace_root())
            .env("PATH", path)
            .env("AUTH_JWT_SECRET", testkit::auth::SECRET)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn()
            .expect("bash");
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        Shell {
            _child: child,
            stdin,
            stdout,
            stderr_path,
        }
    }

    /// Runs `command`; its exit status and its output lines.
    async fn run(&mut self, command: &str) -> (i32, Vec<String>) {
        let script = format!("{command}\nprintf '\\n%s %s\\n' {MARKER} \"$?\"\n");
        self.stdin.write_all(script.as_bytes()).await.unwrap();
        self.stdin.flush().await.unwrap();
        let mut lines = Vec::new();
        loop {
            let line = tokio::time::timeout(Duration::from_secs(600), self.stdout.next_line())
                .await
                .unwrap_or_else(|_| panic!("{command} did not finish"))
                .unwrap()
                .unwrap_or_else(|| panic!("bash ended during {command}: {}", self.stderr_since(0)));
            if let Some(status) = line.strip_prefix(MARKER) {
                // The marker's own leading newline ends a last line without one, or is an
                // empty line of its own.
                if lines.last().is_some_and(|last: &String| last.is_empty()) {
                    lines.pop();
                }
                return (status.trim().parse().unwrap(), lines);
            }
            lines.push(line);
        }
    }

    /// What the session wrote to standard error since `offset` (a length it had).
    fn stderr_since(&self, offset: usize) -> String {
        let written = std::fs::read_to_string(&self.stderr_path).unwrap_or_default();
        written.get(offset..).unwrap_or_default().to_owned()
    }

    /// How much the session has written to standard error.
    fn stderr_len(&self) -> usize {
        std::fs::metadata(&self.stderr_path)
            .map(|metadata| usize::try_from(metadata.len()).unwrap_or(usize::MAX))
            .unwrap_or(0)
    }
}

/// The command as this test runs it: the services' addresses, the secret the services verify,
/// and the ids of this run.
fn localised(command: &str, system: &System, ids: &Ids) -> String {
    let mut command = substitute(command, ids);
    for (port, svc) in [
        (8080, Svc::Order),
        (8081, Svc::Inventory),
        (8082, Svc::Payment),
        (8083, Svc::Notify),
    ] {
        let address = system.url(svc).trim_start_matches("http://").to_owned();
        command = command.replace(&format!("localhost:{port}"), &address);
    }
    // A secret the session sets itself is replaced by the one the services under test verify.
    if let Some(start) = command.find("AUTH_JWT_SECRET=") {
        let value = start + "AUTH_JWT_SECRET=".len();
        let end = command[value..]
            .find(char::is_whitespace)
            .map_or(command.len(), |offset| value + offset);
        command.replace_range(value..end, &format!("'{}'", testkit::auth::SECRET));
    }
    command
}

#[tokio::test]
async fn the_readme_curl_session_runs_as_written() {
    let readme = std::fs::read_to_string(workspace_root().join("README.md")).unwrap();
    let steps = session(&readme);
    assert!(
        steps
            .iter()
            .filter(|step| is_runnable(&step.command))
            .count()
            >= 5,
        "the README's session has its commands: {steps:?}"
    );
    let system = System::start(SystemConfig::default()).await;
    let stderr_path = system.log_dir().join("readme-session.stderr");
    let mut shell = Shell::start(stderr_path);
    let mut ids = Ids::new();
    for step in steps.iter().filter(|step| is_runnable(&step.command)) {
        // Ids first seen in a command are the reader's own (a customer id they chose).
        for id in uuids_in(&step.command) {
            ids.entry(id.clone()).or_insert(id);
        }
        let command = localised(&step.command, &system, &ids);
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let stderr_offset = shell.stderr_len();
            let (status, printed) = shell.run(&command).await;
            let outcome = match status {
                0 => compare(&step.shown, &printed, &ids),
                failed => Err(format!("exit status {failed}")),
            };
            match outcome {
                Ok(learnt) => {
                    ids = learnt;
                    break;
                }
                Err(_) if only_reads(&step.command) && tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(mismatch) => panic!(
                    "the README's `{}` ran as `{command}`: {mismatch}\nthe README shows:\n{}\nit printed:\n{}\nstderr:\n{}",
                    step.command,
                    step.shown.join("\n"),
                    printed.join("\n"),
                    shell.stderr_since(stderr_offset)
                ),
            }
        }
    }
}

#[test]
fn the_session_parser_reads_commands_outputs_and_pairs() {
    let readme = "intro\n## The API, with curl\n\n```console\n$ export T=$(cargo run -q -p sagactl -- token --operator)\n$ curl -i -X POST localhost:8080/orders \\\n    -d '{}'\nHTTP/1.1 201 Created\n\n{\"id\":\"01a20ca2-2c75-72f2-a4b3-77e3c2f44380\",\"total\":null}\n```\n\n```sh\n$ not-a-session-command\n```\n## Next\n```console\n$ curl localhost:8080/later\n```\n";
    let steps = session(readme);
    let commands: Vec<&str> = steps.iter().map(|step| step.command.as_str()).collect();
    assert_eq!(
        commands,
        [
            "export T=$(cargo run -q -p sagactl -- token --operator)",
            "curl -i -X POST localhost:8080/orders \\\n    -d '{}'",
        ]
    );
    assert_eq!(steps[1].shown.len(), 3);
    assert_eq!(
        scalar_pairs(&steps[1].shown[2]),
        [
            (
                "id".to_owned(),
                "01a20ca2-2c75-72f2-a4b3-77e3c2f44380".to_owned()
            ),
            ("total".to_owned(), "null".to_owned()),
        ]
    );
    // (command, runnable, only reads)
    let cases = [
        ("curl localhost:8080/orders/1", true, true),
        ("curl -X PUT localhost:8081/products/a -d '{}'", true, false),
        (
            "curl -i -X POST localhost:8080/orders --json '{}'",
            true,
            false,
        ),
        (
            "OPERATOR=$(cargo run -q -p sagactl -- token --operator)",
            true,
            false,
        ),
        ("scripts/run-local.sh", false, false),
        ("cargo run -p chaos", false, false),
    ];
    for (command, runnable, reads) in cases {
        assert_eq!(
            (is_runnable(command), only_reads(command)),
            (runnable, reads),
            "{command}"
        );
    }
    assert_eq!(
        before_elision("Payment of 25.00 received for order 01a20ca2-…"),
        "Payment of 25.00 received for order "
    );
}
