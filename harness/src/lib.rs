//! fobsim's conformance harness: scenario language, runner, engine adapters, reports
