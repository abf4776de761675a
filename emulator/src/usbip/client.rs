//! A USB/IP client: list a server's devices, import one, and talk to it
//! with control and interrupt transfers — enough to press a fob over
//! USB/IP without a kernel. Generic over `AsyncRead + AsyncWrite`.

use std::collections::HashSet;
use std::io;

use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};

use crate::command::Command;
use crate::hid::REPORT_LEN;
use crate::hid::frame::{Answer, AnswerAssembler, AnswerError, encode_command};

use super::descriptors::{EP_VENDOR_IN, EP_VENDOR_OUT};
use super::device::Setup;
use super::pdu::{
    Cmd, DeviceInfo, Direction, OpReply, OpRequest, PduError, Ret, RetSubmit, Submit, Unlink,
};

/// Why a USB/IP exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Reading or writing failed.
    #[error("usbip client: {0}")]
    Io(#[from] io::Error),
    /// The server sent something that is not USB/IP.
    #[error("usbip client: {0}")]
    Pdu(#[from] PduError),
    /// The server closed the connection.
    #[error("usbip client: the server closed the connection")]
    Closed,
    /// The server answered an operation with something else.
    #[error("usbip client: unexpected reply {0}")]
    Unexpected(&'static str),
    /// The import was refused (no such bus id, or already imported).
    #[error("usbip client: import of {0} refused")]
    ImportRefused(String),
    /// A URB completed with an error status (e.g. -32, STALL).
    #[error("usbip client: URB {seqnum} failed with status {status}")]
    Status {
        /// The URB.
        seqnum: u32,
        /// Its status.
        status: i32,
    },
    /// The fob's answer was not understood.
    #[error("usbip client: {0}")]
    Answer(#[from] AnswerError),
}

async fn read_more<T: AsyncRead + Unpin>(io: &mut T, buf: &mut Vec<u8>) -> Result<(), ClientError> {
    let mut chunk = [0u8; 16 * 1024];
    let n = io.read(&mut chunk).await?;
    if n == 0 {
        return Err(ClientError::Closed);
    }
    buf.extend_from_slice(&chunk[..n]);
    Ok(())
}

async fn op<T>(io: &mut T, req: &OpRequest) -> Result<(OpReply, Vec<u8>), ClientError>
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    io.write_all(&req.emit()).await?;
    io.flush().await?;
    let mut buf = Vec::new();
    loop {
        if let Some((rep, used)) = OpReply::decode(&buf)? {
            buf.drain(..used);
            return Ok((rep, buf));
        }
        read_more(io, &mut buf).await?;
    }
}

/// `OP_REQ_DEVLIST`: the devices a server exports.
///
/// # Errors
/// [`ClientError`].
pub async fn list<T>(mut io: T) -> Result<Vec<DeviceInfo>, ClientError>
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    match op(&mut io, &OpRequest::DevList).await? {
        (OpReply::DevList(d), _) => Ok(d),
        _ => Err(ClientError::Unexpected("to OP_REQ_DEVLIST")),
    }
}

/// An imported device.
#[derive(Debug)]
pub struct Imported<T> {
    io: T,
    buf: Vec<u8>,
    info: DeviceInfo,
    next_seq: u32,
    in_urbs: HashSet<u32>,
    seq: u8,
}

impl<T: AsyncRead + AsyncWrite + Unpin> Imported<T> {
    /// `OP_REQ_IMPORT` of `busid`.
    ///
    /// # Errors
    /// [`ClientError::ImportRefused`] and IO/protocol errors.
    pub async fn import(mut io: T, busid: &str) -> Result<Self, ClientError> {
        let req = OpRequest::Import {
            busid: busid.to_string(),
        };
        match op(&mut io, &req).await? {
            (OpReply::Import(Some(info)), buf) => Ok(Imported {
                io,
                buf,
                info,
                next_seq: 1,
                in_urbs: HashSet::new(),
                seq: 0,
            }),
            (OpReply::Import(None), _) => Err(ClientError::ImportRefused(busid.to_string())),
            _ => Err(ClientError::Unexpected("to OP_REQ_IMPORT")),
        }
    }

    /// The device record the server sent.
    #[must_use]
    pub fn info(&self) -> &DeviceInfo {
        &self.info
    }

    /// Send a `CMD_SUBMIT` (without waiting); returns its sequence number.
    ///
    /// # Errors
    /// IO errors.
    pub async fn submit(
        &mut self,
        direction: Direction,
        ep: u32,
        setup: [u8; 8],
        length: u32,
        data: Vec<u8>,
    ) -> Result<u32, ClientError> {
        let seqnum = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(1).max(1);
        if direction == Direction::In {
            self.in_urbs.insert(seqnum);
        }
        let cmd = Cmd::Submit(Submit {
            seqnum,
            devid: self.info.devid(),
            direction,
            ep,
            transfer_flags: 0,
            length,
            start_frame: 0,
            number_of_packets: 0,
            interval: if ep == 0 { 0 } else { 1 },
            setup,
            data,
        });
        self.io.write_all(&cmd.emit()).await?;
        self.io.flush().await?;
        Ok(seqnum)
    }

    /// Send a `CMD_UNLINK` of URB `target` (without waiting); returns its
    /// sequence number.
    ///
    /// # Errors
    /// IO errors.
    pub async fn unlink(&mut self, target: u32) -> Result<u32, ClientError> {
        let seqnum = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(1).max(1);
        let cmd = Cmd::Unlink(Unlink {
            seqnum,
            devid: self.info.devid(),
            direction: Direction::Out,
            ep: 0,
            unlink_seqnum: target,
        });
        self.io.write_all(&cmd.emit()).await?;
        self.io.flush().await?;
        Ok(seqnum)
    }

    /// The next `RET_SUBMIT` or `RET_UNLINK`.
    ///
    /// # Errors
    /// IO and protocol errors, [`ClientError::Closed`].
    pub async fn recv(&mut self) -> Result<Ret, ClientError> {
        loop {
            let in_urbs = &self.in_urbs;
            if let Some((ret, used)) = Ret::decode(&self.buf, |s| in_urbs.contains(&s))? {
                self.buf.drain(..used);
                if let Ret::Submit(r) = &ret {
                    self.in_urbs.remove(&r.seqnum);
                }
                return Ok(ret);
            }
            read_more(&mut self.io, &mut self.buf).await?;
        }
    }

    async fn wait(&mut self, seqnum: u32) -> Result<RetSubmit, ClientError> {
        loop {
            if let Ret::Submit(r) = self.recv().await?
                && r.seqnum == seqnum
            {
                if r.status != 0 {
                    return Err(ClientError::Status {
                        seqnum,
                        status: r.status,
                    });
                }
                return Ok(r);
            }
        }
    }

    /// A control IN transfer; returns the data.
    ///
    /// # Errors
    /// [`ClientError::Status`] on a STALL, and IO/protocol errors.
    pub async fn control_in(&mut self, setup: Setup) -> Result<Vec<u8>, ClientError> {
        let s = self
            .submit(
                Direction::In,
                0,
                setup.emit(),
                u32::from(setup.length),
                Vec::new(),
            )
            .await?;
        Ok(self.wait(s).await?.data)
    }

    /// A control OUT transfer.
    ///
    /// # Errors
    /// [`ClientError::Status`] on a STALL, and IO/protocol errors.
    pub async fn control_out(&mut self, setup: Setup, data: Vec<u8>) -> Result<(), ClientError> {
        let len = u32::try_from(data.len()).unwrap_or(u32::MAX);
        let s = self
            .submit(Direction::Out, 0, setup.emit(), len, data)
            .await?;
        self.wait(s).await.map(drop)
    }

    /// `GET_DESCRIPTOR` of a device-level descriptor.
    ///
    /// # Errors
    /// As [`Imported::control_in`].
    pub async fn get_descriptor(
        &mut self,
        dtype: u8,
        index: u8,
        length: u16,
    ) -> Result<Vec<u8>, ClientError> {
        self.control_in(Setup {
            request_type: 0x80,
            request: 6,
            value: u16::from_be_bytes([dtype, index]),
            index: if dtype == 3 && index > 0 { 0x0409 } else { 0 },
            length,
        })
        .await
    }

    /// `SET_CONFIGURATION`.
    ///
    /// # Errors
    /// As [`Imported::control_out`].
    pub async fn set_configuration(&mut self, value: u8) -> Result<(), ClientError> {
        self.control_out(
            Setup {
                request_type: 0,
                request: 9,
                value: u16::from(value),
                index: 0,
                length: 0,
            },
            Vec::new(),
        )
        .await
    }

    /// Run a fob command: the report goes out on interrupt OUT, the answer
    /// comes back on interrupt IN (as many URBs as it has fragments).
    ///
    /// # Errors
    /// [`ClientError`].
    pub async fn command(&mut self, cmd: &Command) -> Result<Answer, ClientError> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let report = encode_command(seq, cmd).to_vec();
        let in_ep = u32::from(EP_VENDOR_IN & 0x0f);
        let mut urb_in = self
            .submit(Direction::In, in_ep, [0; 8], REPORT_LEN as u32, Vec::new())
            .await?;
        let urb_out = self
            .submit(
                Direction::Out,
                u32::from(EP_VENDOR_OUT),
                [0; 8],
                REPORT_LEN as u32,
                report,
            )
            .await?;
        let mut asm = AnswerAssembler::new(seq);
        let mut out_done = false;
        loop {
            let Ret::Submit(r) = self.recv().await? else {
                continue;
            };
            if r.status != 0 {
                return Err(ClientError::Status {
                    seqnum: r.seqnum,
                    status: r.status,
                });
            }
            if r.seqnum == urb_out {
                out_done = true;
            } else if r.seqnum == urb_in {
                if let Some(answer) = asm.feed(&r.data)? {
                    if !out_done {
                        // The OUT completion is sent before the IN one; keep order.
                        self.wait(urb_out).await?;
                    }
                    return Ok(answer);
                }
                urb_in = self
                    .submit(Direction::In, in_ep, [0; 8], REPORT_LEN as u32, Vec::new())
                    .await?;
            }
        }
    }

    /// Give back the connection (e.g. to close it).
    #[must_use]
    pub fn into_inner(self) -> T {
        self.io
    }
}
