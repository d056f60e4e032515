//! `dbcerts config init|list|describe|set|delete`: the profiles file.

use std::io::IsTerminal;

use dbcerts_client::Secret;

use super::args::{ConfigCommand, ConfigInit, Format, Opts};
use super::output::{CliError, confirm, print_json};
use super::profile::{self, DEFAULT_BASE_URL, PROPERTIES, Profile, ProfileFile};

pub fn run(opts: &Opts, command: ConfigCommand) -> Result<(), CliError> {
    let env = profile::process_env;
    let selected = profile::profile_name(opts.profile.as_deref(), &env);
    let json = opts.output == Some(Format::Json);
    let mut file = ProfileFile::load()?;
    match command {
        ConfigCommand::Init(init) => {
            let mut p = init_profile(init, std::io::stdin().is_terminal())?;
            p.output = opts.output.map(|f| f.name().to_owned());
            file.profiles.insert(selected.clone(), p);
            file.save()?;
            println!("Profile \"{selected}\" saved to {}", file.path.display());
            Ok(())
        }
        ConfigCommand::List => {
            let names: Vec<&String> = file.profiles.keys().collect();
            if json {
                return print_json(&names);
            }
            for name in names {
                println!("{name}");
            }
            Ok(())
        }
        ConfigCommand::Describe { name } => {
            let name = name.unwrap_or(selected);
            let p = file
                .profiles
                .get(&name)
                .ok_or_else(|| no_profile(&name, &file))?;
            let shown = p.shown();
            if json {
                let map: serde_json::Map<String, serde_json::Value> = shown
                    .into_iter()
                    .map(|(k, v)| (k.to_owned(), v.into()))
                    .collect();
                return print_json(&map);
            }
            for (key, value) in shown {
                println!("{key} = {value}");
            }
            Ok(())
        }
        ConfigCommand::Set { property, value } => {
            // Written as `-o` spells them, so every reader of the file agrees.
            if property == "output"
                && !<Format as clap::ValueEnum>::value_variants()
                    .iter()
                    .any(|f| f.name() == value)
            {
                return Err(CliError::usage("output must be table or json"));
            }
            let p = file.profiles.entry(selected.clone()).or_default();
            if !p.set(&property, value) {
                let known: Vec<&str> = PROPERTIES.iter().map(|(k, _)| *k).collect();
                return Err(CliError::usage(format!(
                    "unknown property {property:?}; one of {}",
                    known.join(", ")
                )));
            }
            file.save()?;
            println!("Updated property '{property}' of profile \"{selected}\"");
            Ok(())
        }
        ConfigCommand::Delete { name, force } => {
            if !file.profiles.contains_key(&name) {
                return Err(no_profile(&name, &file));
            }
            confirm(force.force, &format!("Delete profile \"{name}\"?"))?;
            file.profiles.remove(&name);
            file.save()?;
            println!("Profile \"{name}\" deleted");
            Ok(())
        }
    }
}

fn no_profile(name: &str, file: &ProfileFile) -> CliError {
    CliError::usage(format!("no profile {name:?} in {}", file.path.display()))
}

/// The profile `init` describes, asking on a terminal for what the flags leave out.
fn init_profile(init: ConfigInit, interactive: bool) -> Result<Profile, CliError> {
    let ask =
        |prompt: &str, default: Option<&str>, optional: bool| -> Result<Option<String>, CliError> {
            let mut input = dialoguer::Input::<String>::new()
                .with_prompt(prompt)
                .allow_empty(optional);
            if let Some(d) = default {
                input = input.default(d.to_owned());
            }
            let text = input
                .interact_text()
                .map_err(|e| CliError::usage(format!("no answer: {e}")))?;
            Ok(Some(text.trim().to_owned()).filter(|t| !t.is_empty()))
        };
    let secret = |prompt: &str| -> Result<Option<String>, CliError> {
        dialoguer::Password::new()
            .with_prompt(prompt)
            .interact()
            .map(Some)
            .map_err(|e| CliError::usage(format!("no answer: {e}")))
    };
    let mut p = Profile {
        base_url: init.base_url,
        public_api_key: init.public_api_key,
        private_api_key: init.private_api_key.map(Secret::new),
        client_id: init.client_id,
        client_secret: init.client_secret.map(Secret::new),
        org_id: init.org_id,
        project_id: init.project_id,
        output: None,
    };
    let has_key = p.public_api_key.is_some();
    let has_sa = p.client_id.is_some();
    if !interactive {
        if !(has_key && p.private_api_key.is_some() || has_sa && p.client_secret.is_some()) {
            return Err(CliError::usage(
                "config init needs --publicApiKey and --privateApiKey, or --clientId and \
                 --clientSecret, when stdin is not a terminal",
            ));
        }
        p.base_url
            .get_or_insert_with(|| DEFAULT_BASE_URL.to_owned());
        return Ok(p);
    }
    if p.base_url.is_none() {
        p.base_url = ask("Base URL", Some(DEFAULT_BASE_URL), false)?;
    }
    let use_key = if has_key || has_sa {
        has_key
    } else {
        dialoguer::Select::new()
            .with_prompt("Authenticate with")
            .items(["API key pair (HTTP Digest)", "Service account (OAuth 2.0)"])
            .default(0)
            .interact()
            .map_err(|e| CliError::usage(format!("no answer: {e}")))?
            == 0
    };
    if use_key {
        if p.public_api_key.is_none() {
            p.public_api_key = ask("Public API key", None, false)?;
        }
        if p.private_api_key.is_none() {
            p.private_api_key = secret("Private API key")?.map(Secret::new);
        }
    } else {
        if p.client_id.is_none() {
            p.client_id = ask("Client ID", None, false)?;
        }
        if p.client_secret.is_none() {
            p.client_secret = secret("Client secret")?.map(Secret::new);
        }
    }
    if p.org_id.is_none() {
        p.org_id = ask("Default organization ID (optional)", None, true)?;
    }
    if p.project_id.is_none() {
        p.project_id = ask("Default project ID (optional)", None, true)?;
    }
    Ok(p)
}
