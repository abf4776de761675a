//! The AWS Query form parser and action validation on arbitrary bodies:
//! never panics; a refusal is an AWS error with a 4xx status and a code;
//! an accepted action re-encodes to a form that parses to the same action.
#![no_main]

use fobsim_aws::Service;
use fobsim_aws::query::{Form, encode_form, parse_action};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(form) = Form::parse(data) else {
        return;
    };
    for service in [Service::Iam, Service::Sts] {
        match parse_action(service, &form) {
            Ok(action) => {
                assert_eq!(action.service(), service);
                // The parameters as the form gave them, encoded again,
                // must give the same action (parse/emit round trip).
                let pairs: Vec<(&str, &str)> = form
                    .pairs()
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                let again = Form::parse(encode_form(&pairs).as_bytes()).expect("our encoding parses");
                assert_eq!(parse_action(service, &again).ok(), Some(action));
            }
            Err(e) => {
                assert!((400..500).contains(&e.status), "{e:?}");
                assert!(!e.code.is_empty());
            }
        }
    }
});
