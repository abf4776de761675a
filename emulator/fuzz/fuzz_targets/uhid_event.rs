//! uhid events from the kernel, arbitrary bytes: decoding never panics,
//! every GET/SET_REPORT is answered with its id.
#![no_main]

use fobsim_emulator::hid::HidOptions;
use fobsim_emulator::command::execute;
use fobsim_emulator::uhid::device::UhidFob;
use fobsim_emulator::uhid::event::Event;
use fobsim_core::{Timestamp};
use fobsim_firmware::{Fob, FobSpec, preset};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(ev) = Event::decode(data) else {
        return;
    };
    let now = Timestamp::from_secs(1_111_111_109);
    let m = preset("gaht").unwrap();
    let mut fob = Fob::new(FobSpec::seeded(m, m.serial(1).unwrap(), 7, now).unwrap()).unwrap();
    let mut u = UhidFob::new(HidOptions { keyboard: true });
    let id = match &ev {
        Event::GetReport { id, .. } | Event::SetReport { id, .. } => Some(*id),
        _ => None,
    };
    let w = u.vendor_event(ev.clone(), &mut |c| execute(c, &mut fob, now, false));
    if let Some(id) = id {
        assert!(
            w.vendor.iter().any(|e| matches!(e,
            Event::GetReportReply { id: i, .. } | Event::SetReportReply { id: i, .. } if *i == id))
        );
    }
    let k = u.keyboard_event(ev);
    if let Some(id) = id {
        assert!(
            k.keyboard.iter().any(|e| matches!(e,
            Event::GetReportReply { id: i, .. } | Event::SetReportReply { id: i, .. } if *i == id))
        );
    }
    for e in w.vendor.iter().chain(&w.keyboard).chain(&k.keyboard) {
        assert_eq!(Event::decode(&e.encode()).as_ref(), Ok(e));
    }
});
