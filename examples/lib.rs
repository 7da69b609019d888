//! The package of hotmeter's complete example programs (`tokio_worker`,
//! `metrics_facade`, `batch_job`); this library only helps their tests.
//!
//! Owns: reading a fenced code block out of the README, so an example can
//! prove the README shows it unchanged. Must not: hold anything an example
//! needs to run (each is one file a user can copy).

/// The `n`-th (from 0) fenced ```` ```rust ```` block of `markdown`,
/// without its fences; `None` when there are fewer.
pub fn rust_block(markdown: &str, n: usize) -> Option<String> {
    let mut blocks = Vec::new();
    let mut current: Option<Vec<&str>> = None;
    for line in markdown.lines() {
        match (&mut current, line.trim_end()) {
            (None, "```rust") => current = Some(Vec::new()),
            (Some(lines), "```") => {
                blocks.push(lines.join("\n") + "\n");
                current = None;
            }
            (Some(lines), _) => lines.push(line),
            (None, _) => {}
        }
    }
    blocks.into_iter().nth(n)
}

/// The text of an example file before its `#[cfg(test)]` module: what a
/// user copies.
pub fn program_part(source: &str) -> &str {
    source.split("\n#[cfg(test)]").next().unwrap_or(source)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_nth_rust_block_only() {
        let md = "# t\n```sh\nls\n```\n```rust\nlet a = 1;\n```\ntext\n```rust\nfn b() {}\n```\n";
        assert_eq!(rust_block(md, 0).as_deref(), Some("let a = 1;\n"));
        assert_eq!(rust_block(md, 1).as_deref(), Some("fn b() {}\n"));
        assert_eq!(rust_block(md, 2), None);
        assert_eq!(program_part("fn main() {}\n\n#[cfg(test)]\nmod tests {}\n"), "fn main() {}\n");
    }
}
