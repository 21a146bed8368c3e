//! `kms-pam project create|list|show|delete` and `kms-pam project member add|list|remove`
//! (docs/cli.md). The organisation administrator creates and deletes projects; a project's
//! administrators manage its members.

use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};
use kms_pam::kms::api::{Project, ProjectRole};
use kms_pam::kms::client::KmsClient;

use crate::globals::{Globals, KmsUrl};
use crate::output::{self, Table};

/// `project ...`.
#[derive(Debug, Args)]
pub(crate) struct ProjectArgs {
    #[command(flatten)]
    kms: KmsUrl,
    #[command(subcommand)]
    command: ProjectCommand,
}

#[derive(Debug, Subcommand)]
enum ProjectCommand {
    /// Create a PAM project (organisation admin).
    Create {
        /// Project name.
        #[arg(value_name = "NAME")]
        name: String,
    },
    /// List the projects you belong to, with your role (every project for an admin).
    List,
    /// Show a project and your role in it.
    Show {
        /// Project name.
        #[arg(value_name = "NAME")]
        name: String,
    },
    /// Delete a project without resources (organisation admin); `default` stays.
    Delete {
        /// Project name.
        #[arg(value_name = "NAME")]
        name: String,
    },
    /// A project's members and their roles.
    Member {
        #[command(subcommand)]
        command: MemberCommand,
    },
}

#[derive(Debug, Subcommand)]
enum MemberCommand {
    /// Add a user to a project, or change their role.
    Add {
        /// Project name.
        #[arg(value_name = "PROJECT")]
        in_project: String,
        /// User name.
        #[arg(value_name = "USER")]
        user: String,
        /// admin: manages the project; member: opens granted sessions, sees their own;
        /// auditor: reads every session, changes nothing.
        #[arg(long, value_enum)]
        role: Role,
    },
    /// List a project's members.
    List {
        /// Project name.
        #[arg(value_name = "PROJECT")]
        in_project: String,
    },
    /// Remove a user from a project: their sessions there end and their grants there go.
    Remove {
        /// Project name.
        #[arg(value_name = "PROJECT")]
        in_project: String,
        /// User name.
        #[arg(value_name = "USER")]
        user: String,
    },
}

/// `--role`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Role {
    Admin,
    Member,
    Auditor,
}

impl From<Role> for ProjectRole {
    fn from(role: Role) -> Self {
        match role {
            Role::Admin => Self::Admin,
            Role::Member => Self::Member,
            Role::Auditor => Self::Auditor,
        }
    }
}

/// Runs `project ...`.
pub(crate) async fn run(args: ProjectArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    let globals = globals.with(&args.kms);
    let client = globals.client()?;
    match args.command {
        ProjectCommand::Create { name } => {
            let project = client.projects().create(&name).await?;
            show_one(&globals, &project, &format!("Created project {name}."))?;
        }
        ProjectCommand::List => {
            let projects = client.projects().list().await?;
            if globals.json() {
                output::print_json(&projects)?;
                return Ok(ExitCode::SUCCESS);
            }
            let mut table = Table::new(&["NAME", "ROLE", "CREATED"]);
            for project in projects {
                table.row(vec![
                    project.name,
                    role_name(project.role),
                    output::time(project.created_at),
                ]);
            }
            table.print("No projects found.")?;
        }
        ProjectCommand::Show { name } => {
            let project = client.projects().get(&name).await?;
            let text = format!(
                "Name:     {}\nYou are:  {}\nCreated:  {}",
                project.name,
                role_name(project.role),
                output::time(project.created_at)
            );
            show_one(&globals, &project, &text)?;
        }
        ProjectCommand::Delete { name } => {
            client.projects().delete(&name).await?;
            output::print(&format!("Deleted project {name}.\n"))?;
        }
        ProjectCommand::Member { command } => member(command, &globals, &client).await?,
    }
    Ok(ExitCode::SUCCESS)
}

async fn member(
    command: MemberCommand,
    globals: &Globals,
    client: &KmsClient,
) -> anyhow::Result<()> {
    match command {
        MemberCommand::Add {
            in_project,
            user,
            role,
        } => {
            let member = client
                .members()
                .set(&in_project, &user, role.into())
                .await?;
            if globals.json() {
                return output::print_json(&member);
            }
            output::print(&format!(
                "{} is now {} of project {in_project}.\n",
                member.user,
                with_article(member.role)
            ))
        }
        MemberCommand::List { in_project } => {
            let members = client.members().list(&in_project).await?;
            if globals.json() {
                return output::print_json(&members);
            }
            let mut table = Table::new(&["USER", "ROLE", "SINCE"]);
            for member in members {
                table.row(vec![
                    member.user,
                    member.role.to_string(),
                    output::time(member.created_at),
                ]);
            }
            table.print("No members found.")
        }
        MemberCommand::Remove { in_project, user } => {
            client.members().remove(&in_project, &user).await?;
            output::print(&format!(
                "Removed {user} from project {in_project}: their sessions there were ended and \
                 their grants there removed.\n"
            ))
        }
    }
}

fn show_one(globals: &Globals, project: &Project, text: &str) -> anyhow::Result<()> {
    if globals.json() {
        output::print_json(project)
    } else {
        output::print(&format!("{text}\n"))
    }
}

fn role_name(role: Option<ProjectRole>) -> String {
    role.map_or_else(|| "-".to_owned(), |r| r.to_string())
}

fn with_article(role: ProjectRole) -> String {
    match role {
        ProjectRole::Admin | ProjectRole::Auditor => format!("an {role}"),
        _ => format!("a {role}"),
    }
}
