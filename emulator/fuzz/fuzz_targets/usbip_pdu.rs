//! The USB/IP PDU decoders and the USB device model on arbitrary bytes:
//! never panics; decoded commands re-encode to the bytes they came from;
//! every URB is completed, left pending (bounded) or unlinked.
#![no_main]

use fobsim_emulator::hid::HidOptions;
use fobsim_emulator::command::execute;
use fobsim_emulator::usbip::descriptors::Descriptors;
use fobsim_emulator::usbip::device::{MAX_PENDING_URBS, UsbFob};
use fobsim_emulator::usbip::pdu::{Cmd, Direction, OpReply, OpRequest, Ret};
use fobsim_core::{Timestamp};
use fobsim_firmware::{Fob, FobSpec, preset};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = OpRequest::decode(data);
    let _ = OpReply::decode(data);
    let _ = Ret::decode(data, |s| s & 1 == 1);

    let now = Timestamp::from_secs(1_111_111_109);
    let m = preset("gaht").unwrap();
    let mut fob = Fob::new(FobSpec::seeded(m, m.serial(1).unwrap(), 7, now).unwrap()).unwrap();
    let keyboard = data.first().is_some_and(|b| b & 1 == 1);
    let mut dev = UsbFob::new(
        Descriptors::new("GAHT00000001", "p", keyboard),
        HidOptions { keyboard },
    );
    let mut buf = data;
    while let Ok(Some((cmd, used))) = Cmd::decode(buf) {
        assert!(used > 0 && used <= buf.len());
        // Round trip: the bytes used re-encode identically, except the
        // ignored parts (iso descriptors, IN data, unlink padding).
        if let Cmd::Submit(s) = &cmd
            && s.number_of_packets <= 0
        {
            let again = cmd.emit();
            let n = if s.direction == Direction::In {
                48
            } else {
                used
            };
            assert_eq!(&again[..n], &buf[..n]);
        }
        buf = &buf[used..];
        match cmd {
            Cmd::Submit(s) => {
                for r in dev.submit(s, &mut |c| execute(c, &mut fob, now, false)) {
                    let bytes = r.emit();
                    // Data follows the header only for IN completions with data.
                    let has_data = matches!(&r, Ret::Submit(s) if !s.data.is_empty());
                    let back = Ret::decode(&bytes, |_| has_data).expect("own PDU decodes");
                    assert_eq!(back, Some((r, bytes.len())));
                }
            }
            Cmd::Unlink(u) => {
                let _ = dev.unlink(u).emit();
            }
        }
        assert!(dev.pending_urbs() <= MAX_PENDING_URBS);
    }
});
