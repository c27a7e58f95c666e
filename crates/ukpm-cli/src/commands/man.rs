//! `ukpm man`: the manual page `ukpm.1`, in roff, generated from the same clap definitions that
//! parse the command line. One page holds every command (as `man git` does not, but `man
//! ./ukpm.1` then answers everything): the global options, then per command its synopsis,
//! description, options and examples.

use std::io::{self, Write};

use anyhow::Result;
use clap::CommandFactory;
use clap_mangen::Man;
use clap_mangen::roff::{Roff, bold, roman};

use crate::args::Cli;
use crate::output::StdoutClosed;

/// Prints the page on stdout.
pub fn run() -> Result<()> {
    let page = render()?;
    let mut out = io::stdout().lock();
    out.write_all(&page)
        .and_then(|()| out.flush())
        .map_err(StdoutClosed)?;
    Ok(())
}

/// The whole page, in memory (a failed write to stdout is then only ever a closed pipe).
fn render() -> io::Result<Vec<u8>> {
    let mut cli = Cli::command().disable_help_subcommand(true);
    cli.build();
    let man = Man::new(cli.clone()).title("UKPM").manual("ukpm Manual");
    let mut page = Vec::new();
    man.render_title(&mut page)?;
    man.render_name_section(&mut page)?;
    man.render_synopsis_section(&mut page)?;
    man.render_description_section(&mut page)?;
    // The top command's options are the global ones; each command's section leaves them out.
    man.render_options_section(&mut page)?;
    let mut heading = Roff::new();
    heading.control("SH", ["COMMANDS"]);
    heading.to_writer(&mut page)?;
    for command in cli.get_subcommands().filter(|c| !c.is_hide_set()) {
        command_section(&mut page, "ukpm", command)?;
    }
    if let Some(examples) = cli.get_after_long_help().or_else(|| cli.get_after_help()) {
        examples_block(&mut page, Some("EXAMPLES"), &examples.to_string())?;
    }
    man.render_version_section(&mut page)?;
    Ok(once_preamble(&page))
}

/// One command as a subsection: `ukpm NAME`, its synopsis, description, own options (not the
/// global ones, nor --help and --version, which every command takes) and examples; then its
/// own subcommands (`ukpm source add`), each a subsection too.
fn command_section(page: &mut Vec<u8>, parent: &str, command: &clap::Command) -> io::Result<()> {
    let mut own = command.clone().mut_args(|arg| {
        let everywhere = arg.is_global_set() || matches!(arg.get_id().as_str(), "help" | "version");
        if everywhere { arg.hide(true) } else { arg }
    });
    own.build();
    let name = format!("{parent} {}", command.get_name());
    let mut roff = Roff::new();
    roff.control("SS", [name.as_str()]);
    let aliases: Vec<&str> = command.get_visible_aliases().collect();
    if !aliases.is_empty() {
        roff.text([roman(format!("Also: {}.", aliases.join(", ")))]);
        roff.control("PP", []);
    }
    roff.to_writer(page)?;
    let man = Man::new(own.clone());
    let mut synopsis = Vec::new();
    man.render_synopsis_section(&mut synopsis)?;
    page.extend(without_heading(&synopsis, "SYNOPSIS"));
    paragraph(page)?;
    let mut description = Vec::new();
    man.render_description_section(&mut description)?;
    page.extend(without_heading(&description, "DESCRIPTION"));
    paragraph(page)?;
    if own.get_arguments().any(|arg| !arg.is_hide_set()) {
        let mut label = Roff::new();
        label.text([bold("Options and arguments:")]);
        label.to_writer(page)?;
        let mut options = Vec::new();
        man.render_options_section(&mut options)?;
        page.extend(without_heading(&options, "OPTIONS"));
        paragraph(page)?;
    }
    if let Some(examples) = command.get_after_long_help().or_else(|| command.get_after_help()) {
        examples_block(page, None, &examples.to_string())?;
    }
    for sub in command
        .get_subcommands()
        .filter(|c| !c.is_hide_set() && c.get_name() != "help")
    {
        command_section(page, &name, sub)?;
    }
    Ok(())
}

/// The `after_help` examples as a block kept line for line (`.nf`): under its `Examples:`
/// label, in bold, or for the page's own examples under a section heading instead.
fn examples_block(page: &mut Vec<u8>, section: Option<&str>, text: &str) -> io::Result<()> {
    let mut roff = Roff::new();
    let mut lines = text.lines().peekable();
    if lines.peek().is_some_and(|line| line.trim_end().ends_with(':')) {
        let label = lines.next().unwrap_or_default().trim();
        match section {
            Some(heading) => roff.control("SH", [heading]),
            None => roff.control("PP", []).text([bold(label)]),
        };
    }
    roff.control("nf", []);
    roff.control("RS", ["4"]);
    for line in lines {
        roff.text([roman(line.trim_start_matches("  "))]);
    }
    roff.control("RE", []);
    roff.control("fi", []);
    roff.control("PP", []);
    roff.to_writer(page)
}

/// A paragraph break.
fn paragraph(page: &mut Vec<u8>) -> io::Result<()> {
    let mut roff = Roff::new();
    roff.control("PP", []);
    roff.to_writer(page)
}

/// A rendered section without its `.SH` line: inside a command's subsection, the parts are
/// paragraphs, not sections of the page.
fn without_heading(text: &[u8], heading: &str) -> Vec<u8> {
    let line = format!(".SH {heading}\n");
    let text = String::from_utf8_lossy(text);
    text.replacen(&line, "", 1).into_bytes()
}

/// The page with roff's apostrophe definition (which every rendered piece starts with) kept
/// only where the page begins.
fn once_preamble(page: &[u8]) -> Vec<u8> {
    const PREAMBLE: &str = ".ie \\n(.g .ds Aq \\(aq\n.el .ds Aq '\n";
    let text = String::from_utf8_lossy(page);
    match text.split_once(PREAMBLE) {
        Some((before, after)) => format!("{before}{PREAMBLE}{}", after.replace(PREAMBLE, "")).into_bytes(),
        None => page.to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use crate::args::Cli;

    /// Every visible command below `command`, with its full name (`ukpm source add`).
    fn commands(prefix: &str, command: &clap::Command, all: &mut Vec<(String, clap::Command)>) {
        for sub in command
            .get_subcommands()
            .filter(|c| !c.is_hide_set() && c.get_name() != "help")
        {
            let name = format!("{prefix} {}", sub.get_name());
            commands(&name, sub, all);
            all.push((name, sub.clone()));
        }
    }

    /// The `ukpm ...` invocations in one line of shell: after `|`, `&&`, `<(`, `ssh host`;
    /// without a `#` comment or a `>` redirection.
    fn invocations(line: &str) -> Vec<Vec<String>> {
        let line = line.split(" # ").next().unwrap_or_default();
        line.split(['|', '(', ')', ';'])
            .flat_map(|part| part.split("&&"))
            .filter_map(|part| {
                let start = part.find("ukpm ")?;
                let command = part[start..].split(" > ").next().unwrap_or_default();
                Some(shlex::split(command).unwrap_or_else(|| panic!("not shell words: {command}")))
            })
            .collect()
    }

    #[test]
    fn every_command_has_a_paragraph_and_examples_that_parse() {
        let mut cli = Cli::command();
        cli.build();
        let mut all = vec![("ukpm".to_string(), cli.clone())];
        commands("ukpm", &cli, &mut all);
        assert!(all.len() > 25, "{} commands", all.len());
        for (name, command) in &all {
            let about = command.get_about().map(ToString::to_string).unwrap_or_default();
            let long = command
                .get_long_about()
                .map(ToString::to_string)
                .unwrap_or_default();
            assert!(
                long.len() > about.len() + 40,
                "`{name} --help` has no paragraph of its own: {long:?}"
            );
            let examples = command
                .get_after_help()
                .map(ToString::to_string)
                .unwrap_or_default();
            let mut lines = examples.lines();
            assert_eq!(lines.next(), Some("Examples:"), "`{name} --help` has no examples");
            let mut parsed = 0;
            for line in lines {
                // Help wraps at the terminal's width: an example must fit 80 columns unbroken.
                assert!(
                    line.chars().count() <= 80,
                    "`{name}`: an example is too wide: {line}"
                );
                assert!(
                    line.starts_with("  "),
                    "`{name}`: an example is not indented: {line}"
                );
                for words in invocations(line) {
                    let parsed_ok = match Cli::try_parse_from(&words).and_then(|cli| cli.check()) {
                        Ok(()) => true,
                        Err(err) => err.kind() == clap::error::ErrorKind::DisplayHelp,
                    };
                    assert!(parsed_ok, "`{name}` example `{line}` does not parse");
                    parsed += 1;
                }
            }
            assert!(parsed > 0, "`{name}` has no example that runs ukpm");
        }
    }

    #[test]
    fn the_page_has_a_section_for_every_command() {
        let page = String::from_utf8(super::render().expect("render")).expect("utf-8");
        let mut cli = Cli::command();
        cli.build();
        let mut all = Vec::new();
        commands("ukpm", &cli, &mut all);
        for (name, _) in all {
            let heading = format!(".SS \"{name}\"");
            let bare = format!(".SS {name}\n");
            assert!(
                page.contains(&heading) || page.contains(&bare),
                "no section for {name}"
            );
        }
        assert_eq!(page.matches(".ds Aq").count(), 2, "the preamble is repeated");
        assert!(page.starts_with(".ie"));
        assert!(page.contains(".SH EXAMPLES"));
        assert!(page.contains(".SH \"GLOBAL OPTIONS\""));
    }
}
