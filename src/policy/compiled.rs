//! A ScanPolicy compiled once with regorus and evaluated many times, from many threads.
//!
//! # How a policy is compiled
//!
//! 1. **Dialect.** The Rego is parsed as Rego v1 (regorus's default). If that fails it is parsed
//!    as Rego v0. A v0 policy fails the v1 parser (`deny[msg] { ... }` needs `if` and
//!    `contains` in v1), and a v1 policy that does not `import rego.v1` fails the v0 parser
//!    (`contains` and `if` are plain identifiers in v0), so the dialect that parses is the one
//!    the author meant. When both fail, the error of the parser that got further (later line
//!    and column) is reported: that is the dialect the author wrote in, and its error points at
//!    the real mistake rather than at the first construct of the other dialect.
//! 2. **Contract shape.** The package must be `main` and a `deny` rule must be declared.
//! 3. **Preparation.** regorus analyses the modules (scheduling, loop hoisting) once, through
//!    [`regorus::Engine::compile_with_entrypoint`]. The prepared engine is kept; every
//!    evaluation works on a clone of it, which shares the parsed modules and the analysis by
//!    reference counting (regorus is built with its `arc` feature, so this is thread-safe) and
//!    only copies the per-evaluation state.
//!
//! # Time limit
//!
//! regorus 0.14.1 has a cooperative execution timer ([`ExecutionTimerConfig`]): the
//! interpreter counts work units in its loops, statements and rule evaluations and, every
//! [`TIMER_CHECK_INTERVAL`] units, compares the elapsed wall-clock time with the limit, then
//! stops with [`LimitError::TimeLimitExceeded`], which becomes [`Error::Timeout`]. The timer is
//! configured on the prepared engine, so each clone starts its own clock. It cannot interrupt a
//! single builtin call that runs long by itself (e.g. `numbers.range(1, 1e9)` materialising a
//! huge array); it stops any unbounded or deeply nested iteration written in Rego. Memory is not
//! bounded here: the webhook and the controller run policies in [`crate::sandbox`] workers,
//! whose OS limits bound memory and kill what this timer cannot interrupt.
//!
//! Builtin errors are strict (regorus's default): `to_number("x")` is an evaluation error, not
//! an undefined value, so a broken policy shows up as an error instead of silently passing.

use std::any::Any;
use std::fmt;
use std::num::NonZeroU32;
use std::panic::{self, AssertUnwindSafe};
use std::time::Duration;

use regorus::unstable::{Expr, Rule, RuleHead};
use regorus::utils::limits::ExecutionTimerConfig;
use regorus::{Engine, LimitError, Value};
use serde::Deserialize;

use super::compat::CompatInput;
use super::error::{Error, Result};

/// The rule scangate evaluates: a set of messages, one per violation.
pub const DENY_RULE: &str = "data.main.deny";

/// The default time limit of one evaluation.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);

/// How many interpreter work units pass between two reads of the clock.
pub const TIMER_CHECK_INTERVAL: NonZeroU32 = match NonZeroU32::new(64) {
    Some(interval) => interval,
    None => NonZeroU32::MIN,
};

/// The longest excerpt of an unexpected value quoted in an error message.
const MAX_QUOTED_CHARS: usize = 80;

/// The Rego dialect a policy is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Syntax {
    /// Rego v1: `deny contains msg if { ... }` (the default of OPA 1.0 and regorus).
    V1,
    /// Rego v0: `deny[msg] { ... }`, future keywords only when imported.
    V0,
}

impl fmt::Display for Syntax {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::V1 => "v1",
            Self::V0 => "v0",
        })
    }
}

/// How a policy is evaluated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PolicyOptions {
    /// Wall-clock limit of one evaluation.
    pub timeout: Duration,
    /// The shape of `input` the policy expects.
    pub input: CompatInput,
}

impl Default for PolicyOptions {
    fn default() -> Self {
        Self {
            timeout: DEFAULT_TIMEOUT,
            input: CompatInput::default(),
        }
    }
}

impl PolicyOptions {
    /// These options with another time limit.
    #[must_use]
    pub const fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// These options with another input shape.
    #[must_use]
    pub const fn with_input(mut self, input: CompatInput) -> Self {
        self.input = input;
        self
    }
}

/// The outcome of one evaluation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Evaluation {
    /// The messages of `deny`, sorted and deduplicated; one per violation.
    pub deny: Vec<String>,
}

impl Evaluation {
    /// True when the policy denies nothing.
    #[must_use]
    pub fn is_compliant(&self) -> bool {
        self.deny.is_empty()
    }
}

/// A ScanPolicy's Rego, parsed and prepared once; cheap to evaluate, `Send + Sync`, meant to be
/// shared behind an `Arc`.
#[derive(Clone)]
pub struct CompiledPolicy {
    name: String,
    syntax: Syntax,
    options: PolicyOptions,
    engine: Engine,
}

impl fmt::Debug for CompiledPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CompiledPolicy")
            .field("name", &self.name)
            .field("syntax", &self.syntax)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl CompiledPolicy {
    /// Parses (v1, else v0), checks `package main` and a `deny` rule, and prepares the policy.
    ///
    /// `name` labels the source in messages; use [`source_name`] for a ScanPolicy.
    /// This does not evaluate anything: [`super::check_contract`] adds that.
    pub fn compile(name: &str, rego: &str, options: PolicyOptions) -> Result<Self> {
        let (mut engine, syntax) = parse(name, rego)?;
        check_package(name, &engine)?;
        check_deny_declared(name, &mut engine)?;
        engine.set_execution_timer_config(ExecutionTimerConfig {
            limit: options.timeout,
            check_interval: TIMER_CHECK_INTERVAL,
        });
        engine
            .compile_with_entrypoint(&DENY_RULE.into())
            .map_err(|err| Error::Compile {
                name: name.to_owned(),
                message: format!("{err:#}"),
            })?;
        Ok(Self {
            name: name.to_owned(),
            syntax,
            options,
            engine,
        })
    }

    /// The source name given at compilation.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The dialect the policy was recognised as.
    #[must_use]
    pub const fn syntax(&self) -> Syntax {
        self.syntax
    }

    /// The options the policy was compiled with.
    #[must_use]
    pub const fn options(&self) -> &PolicyOptions {
        &self.options
    }

    /// Evaluates `data.main.deny` with `report` (a normalized report) as input, shaped as
    /// [`PolicyOptions::input`] says.
    pub fn evaluate(&self, report: &serde_json::Value) -> Result<Evaluation> {
        let input = self.options.input.input_for(report);
        let input = Value::deserialize(input.as_ref()).map_err(|err| Error::Input {
            name: self.name.clone(),
            message: err.to_string(),
        })?;
        let deny = self.eval_deny(input)?;
        Ok(Evaluation {
            deny: deny_messages(&self.name, &deny)?,
        })
    }

    /// Runs the deny rule on a clone of the prepared engine, containing panics.
    fn eval_deny(&self, input: Value) -> Result<Value> {
        let mut engine = self.engine.clone();
        engine.set_input(input);
        let outcome =
            panic::catch_unwind(AssertUnwindSafe(|| engine.eval_rule(DENY_RULE.to_owned())));
        match outcome {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(err)) => Err(self.evaluation_error(&err)),
            Err(payload) => Err(Error::Panic {
                name: self.name.clone(),
                message: panic_message(payload.as_ref()),
            }),
        }
    }

    /// Classifies a regorus evaluation error.
    fn evaluation_error(&self, err: &anyhow::Error) -> Error {
        let timed_out = err.chain().any(|cause| {
            matches!(
                cause.downcast_ref::<LimitError>(),
                Some(LimitError::TimeLimitExceeded { .. })
            )
        });
        if timed_out {
            Error::Timeout {
                name: self.name.clone(),
                limit: self.options.timeout,
            }
        } else {
            Error::Evaluation {
                name: self.name.clone(),
                message: format!("{err:#}"),
            }
        }
    }

    #[cfg(test)]
    pub(crate) fn engine(&self) -> &Engine {
        &self.engine
    }
}

/// The source name of a ScanPolicy's Rego in messages: `<namespace>/<name>.rego`.
#[must_use]
pub fn source_name(namespace: &str, name: &str) -> String {
    format!("{namespace}/{name}.rego")
}

/// Parses as v1, else as v0; when both fail, reports the error that came further.
fn parse(name: &str, rego: &str) -> Result<(Engine, Syntax)> {
    let v1_error = match load(name, rego, Syntax::V1) {
        Ok(engine) => return Ok((engine, Syntax::V1)),
        Err(err) => format!("{err:#}"),
    };
    let v0_error = match load(name, rego, Syntax::V0) {
        Ok(engine) => return Ok((engine, Syntax::V0)),
        Err(err) => format!("{err:#}"),
    };
    let v1_position = error_position(name, &v1_error);
    let v0_position = error_position(name, &v0_error);
    let (syntax, message, position) = if v0_position > v1_position {
        (Syntax::V0, v0_error, v0_position)
    } else {
        (Syntax::V1, v1_error, v1_position)
    };
    Err(Error::Syntax {
        name: name.to_owned(),
        syntax,
        line: position.map(|(line, _)| line),
        column: position.map(|(_, column)| column),
        message,
    })
}

/// An engine holding the policy parsed in one dialect.
fn load(name: &str, rego: &str, syntax: Syntax) -> anyhow::Result<Engine> {
    let mut engine = Engine::new();
    engine.set_rego_v0(syntax == Syntax::V0);
    engine.add_policy(name.to_owned(), rego.to_owned())?;
    Ok(engine)
}

/// The `line:column` of a regorus message (`--> <name>:<line>:<column>`).
fn error_position(name: &str, message: &str) -> Option<(u32, u32)> {
    let marker = format!("--> {name}:");
    let start = message.find(&marker)? + marker.len();
    let rest = message.get(start..)?;
    let location = rest.split_whitespace().next()?;
    let (line, column) = location.split_once(':')?;
    Some((line.parse().ok()?, column.parse().ok()?))
}

/// Requires `package main`.
fn check_package(name: &str, engine: &Engine) -> Result<()> {
    let packages = engine
        .get_policy_package_components()
        .map_err(|err| Error::Compile {
            name: name.to_owned(),
            message: format!("{err:#}"),
        })?;
    match packages.first() {
        Some(package) if package.components == ["main"] => Ok(()),
        Some(package) => Err(Error::NotPackageMain {
            name: name.to_owned(),
            package: package.components.join("."),
        }),
        None => Err(Error::NotPackageMain {
            name: name.to_owned(),
            package: String::new(),
        }),
    }
}

/// Requires a rule named `deny` that is not a function (a function is never evaluated by
/// `data.main.deny` and would pass every report).
fn check_deny_declared(name: &str, engine: &mut Engine) -> Result<()> {
    match engine.has_declared_rule_rooted_at(name, "deny") {
        Ok(true) if declares_deny_function(engine) => Err(Error::DenyIsAFunction {
            name: name.to_owned(),
        }),
        Ok(true) => Ok(()),
        Ok(false) => Err(Error::MissingDeny {
            name: name.to_owned(),
        }),
        Err(err) => Err(Error::Compile {
            name: name.to_owned(),
            message: format!("{err:#}"),
        }),
    }
}

/// Whether a rule head is `deny(…)`. The AST is regorus's `unstable` API.
fn declares_deny_function(engine: &mut Engine) -> bool {
    engine.get_modules().iter().any(|module| {
        module.policy.iter().any(|rule| match rule.as_ref() {
            Rule::Spec {
                head: RuleHead::Func { refr, .. },
                ..
            } => matches!(refr.as_ref(), Expr::Var { span, .. } if span.text() == "deny"),
            Rule::Spec { .. } => false,
            Rule::Default { refr, args, .. } => {
                !args.is_empty()
                    && matches!(refr.as_ref(), Expr::Var { span, .. } if span.text() == "deny")
            }
        })
    })
}

/// The messages of `deny`: a set or an array of strings; undefined means none.
fn deny_messages(name: &str, deny: &Value) -> Result<Vec<String>> {
    let items: Vec<&Value> = match deny {
        Value::Undefined => Vec::new(),
        Value::Set(set) => set.iter().collect(),
        Value::Array(array) => array.iter().collect(),
        other => {
            return Err(Error::DenyNotACollection {
                name: name.to_owned(),
                found: describe(other),
            });
        }
    };
    let mut messages = items
        .into_iter()
        .map(|item| match item {
            Value::String(message) => Ok(message.to_string()),
            other => Err(Error::DenyNotStrings {
                name: name.to_owned(),
                found: describe(other),
            }),
        })
        .collect::<Result<Vec<_>>>()?;
    messages.sort_unstable();
    messages.dedup();
    Ok(messages)
}

/// `a number (5)`: the kind of a value and an excerpt of it, for messages.
fn describe(value: &Value) -> String {
    let kind = match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Set(_) => "a set",
        Value::Object(_) => "an object",
        Value::Undefined => "undefined",
    };
    let text = value.to_json_str().unwrap_or_default();
    let excerpt: String = text
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .take(MAX_QUOTED_CHARS)
        .collect();
    format!("{kind} ({excerpt})")
}

/// The text of a panic payload.
fn panic_message(payload: &(dyn Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|message| (*message).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic without message".to_owned())
}
