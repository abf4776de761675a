//! fobsim's transports: fobs on ptys, uhid and USB/IP; the fleet and its clock
