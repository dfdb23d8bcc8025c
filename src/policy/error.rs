//! The errors of the policy module: each says what is wrong and what to do about it.

use std::time::Duration;

/// Everything that can go wrong compiling, checking or evaluating a ScanPolicy.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The Rego does not parse, neither as Rego v1 nor as Rego v0.
    #[error(
        "policy {name} has a syntax error (as Rego {syntax}):{message}\n\
         fix the Rego at the line and column shown"
    )]
    Syntax {
        /// Source name of the policy (`<namespace>/<name>.rego`).
        name: String,
        /// The dialect whose parser got furthest, whose error is reported.
        syntax: super::Syntax,
        /// Line of the error, when regorus reports one.
        line: Option<u32>,
        /// Column of the error, when regorus reports one.
        column: Option<u32>,
        /// regorus's message, with `file:line:col` and the caret line.
        message: String,
    },

    /// The policy declares a package other than `main`.
    #[error(
        "policy {name} declares `package {package}`, but scangate evaluates `data.main.deny`: \
         start the policy with `package main`"
    )]
    NotPackageMain {
        /// Source name of the policy.
        name: String,
        /// The package the policy declares.
        package: String,
    },

    /// The policy does not define a `deny` rule.
    #[error(
        "policy {name} does not define `deny`: add a rule `deny contains msg if {{ ... }}` \
         (Rego v1) or `deny[msg] {{ ... }}` (Rego v0) that yields one message per violation"
    )]
    MissingDeny {
        /// Source name of the policy.
        name: String,
    },

    /// `deny` is declared as a function, which `data.main.deny` never evaluates.
    #[error(
        "`deny` in policy {name} is a function (`deny(x)`), so it never yields violations: \
         make it a set of messages, `deny contains msg if {{ ... }}` (Rego v1) or \
         `deny[msg] {{ ... }}` (Rego v0)"
    )]
    DenyIsAFunction {
        /// Source name of the policy.
        name: String,
    },

    /// regorus rejected the parsed policy while preparing it for evaluation
    /// (unsafe variables, recursion, conflicting rules, unknown functions...).
    #[error("policy {name} does not compile: {message}\nfix the rule at the position shown")]
    Compile {
        /// Source name of the policy.
        name: String,
        /// regorus's message.
        message: String,
    },

    /// The evaluation failed at run time (a builtin error, a conflict between rule values...).
    #[error("policy {name} failed during evaluation: {message}")]
    Evaluation {
        /// Source name of the policy.
        name: String,
        /// regorus's message.
        message: String,
    },

    /// The evaluation ran past its time limit and was stopped.
    #[error(
        "policy {name} did not finish within its time limit of {limit:?} and was stopped: \
         remove unbounded or nested iterations from the policy, or raise the time limit"
    )]
    Timeout {
        /// Source name of the policy.
        name: String,
        /// The configured limit.
        limit: Duration,
    },

    /// regorus panicked while evaluating the policy; the panic was contained.
    #[error("policy {name} crashed the Rego evaluator ({message}); please report this policy")]
    Panic {
        /// Source name of the policy.
        name: String,
        /// The panic payload, when it is a string.
        message: String,
    },

    /// `deny` is neither a set nor an array.
    #[error(
        "`deny` in policy {name} is {found}, but it must be a set of strings: \
         write `deny contains msg if {{ ... }}` (Rego v1) or `deny[msg] {{ ... }}` (Rego v0)"
    )]
    DenyNotACollection {
        /// Source name of the policy.
        name: String,
        /// What `deny` is instead, e.g. `a boolean (true)`.
        found: String,
    },

    /// `deny` contains something other than a string.
    #[error(
        "`deny` in policy {name} contains {found}, but every element must be a message string: \
         build it with `sprintf`, e.g. `msg := sprintf(\"%s is not allowed\", [vuln.id])`"
    )]
    DenyNotStrings {
        /// Source name of the policy.
        name: String,
        /// The first offending element, e.g. `a number (5)`.
        found: String,
    },

    /// The input given to the policy cannot be turned into a Rego value.
    #[error("the report given to policy {name} is not a valid Rego input: {message}")]
    Input {
        /// Source name of the policy.
        name: String,
        /// Why it was rejected.
        message: String,
    },

    /// The admission contract check evaluated the policy on one of scangate's own sample
    /// reports and the evaluation failed.
    #[error(
        "policy {name} fails on the {report} that scangate evaluates every policy on before \
         accepting it; a policy must work on any report: {cause}"
    )]
    SampleReport {
        /// Source name of the policy.
        name: String,
        /// Which sample: `empty report` or `sample report`.
        report: &'static str,
        /// The evaluation error (part of this message, so not chained as a source).
        cause: Box<Error>,
    },
}

/// The policy module's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
