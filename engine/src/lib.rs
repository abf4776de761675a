//! fobsim's reference MFA verification engine: IAM-style rules, storage, AWS API
