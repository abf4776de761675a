//! Drift acceptance maps: for a grid of device clock offsets (x) and delays
//! (y: between pressing and submitting, or since the last sign-in), does the
//! engine accept a fresh code, reject it, or lock the device? Rendered as
//! SVG (plotters, no system fonts needed) and as a text summary.

use fobsim_core::Timestamp;
use fobsim_core::{Channel, Principal};
use fobsim_firmware::{Drift, FobSpec, preset};
use serde::Serialize;

use crate::adapter::{
    Account, AdapterError, Answer, Capability, EngineAdapter, Reply, Request, Setup, has,
    user_password,
};
use crate::driver::{DriverError, FobBackend, FobDriver};
use crate::runner::seed_record;
use crate::scenario::DEFAULT_START;

/// What the y axis measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum YAxis {
    /// Delay between pressing the button and submitting the code; the
    /// device clock jumps to the offset after enabling.
    SubmitDelay,
    /// Time since the last successful sign-in; the device clock drifts
    /// linearly from in-sync (at that sign-in) to the offset.
    SinceLastSignIn,
}

/// The grid and the conditions of a sweep.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SweepSpec {
    /// Device clock offsets (device minus true time), ms: the columns.
    pub offsets_ms: Vec<i64>,
    /// Delays, ms: the rows.
    pub delays_ms: Vec<i64>,
    /// What the delays mean.
    pub y_axis: YAxis,
    /// Fob model preset.
    pub model: String,
    /// Sign-in attempts per cell (a fresh code each, 30 s apart): more than
    /// the engine's lockout threshold shows where it locks.
    pub attempts: u32,
    /// Secret seed.
    pub seed: u64,
}

impl SweepSpec {
    /// −15 min … +15 min in 30 s columns; delays 0 … 5 min in 15 s rows.
    #[must_use]
    pub fn submit_delay_default() -> Self {
        SweepSpec {
            offsets_ms: (-30..=30).map(|i| i * 30_000).collect(),
            delays_ms: (0..=20).map(|i| i * 15_000).collect(),
            y_axis: YAxis::SubmitDelay,
            model: "gaht".into(),
            attempts: 1,
            seed: 1,
        }
    }

    /// −15 min … +15 min in 30 s columns; 0 s … 3 years since the last sign-in.
    #[must_use]
    pub fn since_last_sign_in_default() -> Self {
        const DAY: i64 = 86_400_000;
        SweepSpec {
            offsets_ms: (-30..=30).map(|i| i * 30_000).collect(),
            delays_ms: vec![
                0,
                DAY,
                7 * DAY,
                30 * DAY,
                91 * DAY,
                182 * DAY,
                365 * DAY,
                730 * DAY,
                1096 * DAY,
            ],
            y_axis: YAxis::SinceLastSignIn,
            model: "gaht".into(),
            attempts: 1,
            seed: 1,
        }
    }

    /// Number of cells.
    #[must_use]
    pub fn cells(&self) -> usize {
        self.offsets_ms.len() * self.delays_ms.len()
    }
}

/// The verdict of one cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Cell {
    /// A code was accepted.
    Accepted,
    /// Every attempt was rejected.
    Rejected,
    /// The engine locked the device.
    Locked,
}

/// The SVG map's colours: Okabe and Ito's palette for colour vision
/// deficiencies (blue / orange / vermillion, not red against green), as
/// `#rrggbb`, accepted, rejected, locked.
pub const PALETTE: [&str; 3] = ["#0072b2", "#e69f00", "#d55e00"];

impl Cell {
    /// The cell's fill in the SVG map (see [`PALETTE`]).
    fn color(self) -> plotters::style::RGBColor {
        use plotters::style::RGBColor;
        match self {
            Cell::Accepted => RGBColor(0x00, 0x72, 0xb2),
            Cell::Rejected => RGBColor(0xe6, 0x9f, 0x00),
            Cell::Locked => RGBColor(0xd5, 0x5e, 0x00),
        }
    }

    fn glyph(self) -> char {
        match self {
            Cell::Accepted => '#',
            Cell::Rejected => '.',
            Cell::Locked => 'L',
        }
    }
}

/// A finished map: `cells[row][col]` for `delays_ms[row]`, `offsets_ms[col]`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SweepMap {
    /// Engine adapter name.
    pub engine: String,
    /// The grid.
    pub spec: SweepSpec,
    /// The verdicts.
    pub cells: Vec<Vec<Cell>>,
}

/// Why a sweep could not run.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SweepError {
    /// The adapter failed.
    #[error(transparent)]
    Adapter(#[from] AdapterError),
    /// The fob could not be built or driven.
    #[error(transparent)]
    Driver(#[from] DriverError),
    /// The engine lacks a capability the sweep needs.
    #[error("engine {engine} cannot {capability:?}: no drift map")]
    Capability {
        /// Engine name.
        engine: String,
        /// Missing capability.
        capability: Capability,
    },
    /// The in-sync enable that starts every cell failed.
    #[error("enabling an in-sync fob failed: {0}")]
    Enable(String),
    /// Bad spec (unknown model, empty axes, too many attempts).
    #[error("bad sweep: {0}")]
    Spec(String),
    /// The SVG could not be drawn.
    #[error("drawing the map failed: {0}")]
    Draw(String),
}

/// Largest `attempts`.
pub const MAX_ATTEMPTS: u32 = 100;

fn check(spec: &SweepSpec) -> Result<FobSpec, SweepError> {
    if spec.offsets_ms.is_empty() || spec.delays_ms.is_empty() {
        return Err(SweepError::Spec("no offsets or no delays".into()));
    }
    if spec.delays_ms.iter().any(|d| *d < 0) {
        return Err(SweepError::Spec("delays must be zero or more".into()));
    }
    if !(1..=MAX_ATTEMPTS).contains(&spec.attempts) {
        return Err(SweepError::Spec(format!(
            "attempts must be 1..={MAX_ATTEMPTS}"
        )));
    }
    let model = preset(&spec.model)
        .filter(|m| m.period().is_some())
        .ok_or_else(|| {
            SweepError::Spec(format!("{:?} is not a time-based model preset", spec.model))
        })?;
    let serial = model
        .serial(1)
        .map_err(|e| SweepError::Spec(e.to_string()))?;
    FobSpec::seeded(model, serial, spec.seed, DEFAULT_START)
        .map_err(|e| SweepError::Spec(e.to_string()))
}

fn call(
    engine: &mut dyn EngineAdapter,
    now: Timestamp,
    req: &Request,
) -> Result<Answer, SweepError> {
    if !has(engine, req.capability()) {
        return Err(SweepError::Capability {
            engine: engine.name().to_string(),
            capability: req.capability(),
        });
    }
    Ok(engine.call(now, req)?)
}

fn press(fob: &mut dyn FobDriver, now: Timestamp) -> Result<String, SweepError> {
    Ok(fob
        .press(now)?
        .code()
        .map(|c| c.to_string())
        .unwrap_or_default())
}

/// Run one cell from a fresh engine and fob.
fn cell(
    engine: &mut dyn EngineAdapter,
    backend: &mut dyn FobBackend,
    fob_spec: &FobSpec,
    spec: &SweepSpec,
    offset_ms: i64,
    delay_ms: i64,
) -> Result<Cell, SweepError> {
    let period_ms = i64::try_from(fob_spec.model.period().unwrap_or(30) * 1000).unwrap_or(30_000);
    let setup = Setup {
        scenario: "sweep".into(),
        account: Account::default(),
        users: vec![("alice".into(), user_password("alice"))],
        access_keys: Vec::new(),
        seeds: vec![seed_record(fob_spec, None)],
        settings: Vec::new(),
        start: DEFAULT_START,
    };
    engine.begin(&setup)?;
    let mut fob = backend.attach(fob_spec.clone())?;
    let who = Principal::User("alice".into());
    let serial = fob_spec.serial.to_string();
    // Enable in sync, mid-step.
    let mut now = DEFAULT_START.add_millis(period_ms / 2);
    let c1 = press(fob.as_mut(), now)?;
    now = now.add_millis(period_ms);
    let c2 = press(fob.as_mut(), now)?;
    let req = Request::Enable {
        who: who.clone(),
        serial: serial.clone(),
        code1: c1,
        code2: c2,
        channel: Channel::Console,
    };
    let ans = call(engine, now, &req)?;
    if !ans.is_ok() {
        return Err(SweepError::Enable(ans.short()));
    }
    // Move well past the enable, so that no offset on the grid makes the
    // device show a step at or before the enable's (a replay).
    let max_off = spec
        .offsets_ms
        .iter()
        .map(|x| x.saturating_abs())
        .max()
        .unwrap_or(0);
    now = now.add_millis(max_off.saturating_add(4 * period_ms));
    match spec.y_axis {
        YAxis::SubmitDelay => fob.set_drift(
            now,
            Drift {
                offset_ms,
                ..Drift::NONE
            },
        )?,
        YAxis::SinceLastSignIn => {
            // The last successful sign-in, in sync.
            let code = press(fob.as_mut(), now)?;
            let ans = call(
                engine,
                now,
                &Request::SignIn {
                    who: who.clone(),
                    password_ok: true,
                    code: Some(code),
                },
            )?;
            if !ans.is_ok() {
                return Err(SweepError::Enable(format!(
                    "in-sync sign-in: {}",
                    ans.short()
                )));
            }
            let drift = if delay_ms == 0 {
                Drift {
                    offset_ms,
                    ..Drift::NONE
                }
            } else {
                Drift {
                    offset_ms: 0,
                    ppm: offset_ms as f64 * 1e6 / delay_ms as f64,
                    jitter_ms: 0,
                }
            };
            fob.set_drift(now, drift)?;
            now = now.add_millis(delay_ms);
            // A fresh step, so the attempt is never a replay of the last sign-in.
            now = now.add_millis(period_ms);
        }
    }
    for _ in 0..spec.attempts {
        let code = press(fob.as_mut(), now)?;
        if spec.y_axis == YAxis::SubmitDelay {
            now = now.add_millis(delay_ms);
        }
        let ans = call(
            engine,
            now,
            &Request::SignIn {
                who: who.clone(),
                password_ok: true,
                code: Some(code),
            },
        )?;
        match &ans {
            Answer::Ok { .. } => return Ok(Cell::Accepted),
            Answer::Error { kind: Some(k), .. } if k == "DeviceLocked" => return Ok(Cell::Locked),
            Answer::Error { .. } => {}
        }
        if has(engine, Capability::ObserveLockout)
            && let Answer::Ok {
                data: Reply::State { locked: true, .. },
            } = engine.call(
                now,
                &Request::DeviceState {
                    serial: serial.clone(),
                },
            )?
        {
            return Ok(Cell::Locked);
        }
        now = now.add_millis(period_ms);
    }
    Ok(Cell::Rejected)
}

/// Run a sweep; `progress(done, total)` is called after each cell.
///
/// # Errors
/// [`SweepError`] for a bad spec, a missing capability or a broken adapter.
pub fn run(
    engine: &mut dyn EngineAdapter,
    backend: &mut dyn FobBackend,
    spec: &SweepSpec,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<SweepMap, SweepError> {
    let fob_spec = check(spec)?;
    let total = spec.cells();
    let mut done = 0;
    let mut cells = Vec::with_capacity(spec.delays_ms.len());
    for &d in &spec.delays_ms {
        let mut row = Vec::with_capacity(spec.offsets_ms.len());
        for &x in &spec.offsets_ms {
            row.push(cell(engine, backend, &fob_spec, spec, x, d)?);
            done += 1;
            progress(done, total);
        }
        cells.push(row);
    }
    Ok(SweepMap {
        engine: engine.name().to_string(),
        spec: spec.clone(),
        cells,
    })
}

/// [`run`] with an indicatif progress bar on stderr (drawn only on a
/// terminal, and only for sweeps of more than `min_cells` cells).
///
/// # Errors
/// As [`run`].
pub fn run_with_progress(
    engine: &mut dyn EngineAdapter,
    backend: &mut dyn FobBackend,
    spec: &SweepSpec,
    min_cells: usize,
) -> Result<SweepMap, SweepError> {
    let total = spec.cells();
    let bar = if total > min_cells {
        let b = indicatif::ProgressBar::new(total as u64);
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{spinner} sweeping {bar:40} {pos}/{len} cells ({eta})",
        ) {
            b.set_style(style);
        }
        Some(b)
    } else {
        None
    };
    let r = run(engine, backend, spec, &mut |done, _| {
        if let Some(b) = &bar {
            b.set_position(done as u64);
        }
    });
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    r
}

fn fmt_offset(ms: i64) -> String {
    let s = fobsim_core::time::format_duration_ms(ms.abs());
    if ms < 0 {
        format!("-{s}")
    } else if ms > 0 {
        format!("+{s}")
    } else {
        s
    }
}

impl SweepMap {
    fn y_label(&self) -> &'static str {
        match self.spec.y_axis {
            YAxis::SubmitDelay => "delay between press and submit",
            YAxis::SinceLastSignIn => "time since the last sign-in",
        }
    }

    /// Counts of accepted, rejected and locked cells.
    #[must_use]
    pub fn counts(&self) -> (usize, usize, usize) {
        let mut c = (0, 0, 0);
        for cell in self.cells.iter().flatten() {
            match cell {
                Cell::Accepted => c.0 += 1,
                Cell::Rejected => c.1 += 1,
                Cell::Locked => c.2 += 1,
            }
        }
        c
    }

    /// A text summary: per row, the accepted offset range, and a character
    /// map (`#` accepted, `.` rejected, `L` locked).
    #[must_use]
    pub fn summary(&self) -> String {
        let mut out = String::new();
        let (a, r, l) = self.counts();
        out.push_str(&format!(
            "drift acceptance map: engine {}, model {}, x = device clock offset {} .. {}, y = {}\n",
            self.engine,
            self.spec.model,
            fmt_offset(*self.spec.offsets_ms.first().unwrap_or(&0)),
            fmt_offset(*self.spec.offsets_ms.last().unwrap_or(&0)),
            self.y_label()
        ));
        out.push_str(&format!(
            "{} cells: {a} accepted, {r} rejected, {l} locked\n",
            a + r + l
        ));
        let w = self
            .spec
            .delays_ms
            .iter()
            .map(|d| fobsim_core::time::format_duration_ms(*d).len())
            .max()
            .unwrap_or(2);
        for (d, row) in self.spec.delays_ms.iter().zip(&self.cells) {
            let map: String = row.iter().map(|c| c.glyph()).collect();
            let acc: Vec<i64> = self
                .spec
                .offsets_ms
                .iter()
                .zip(row)
                .filter(|(_, c)| **c == Cell::Accepted)
                .map(|(x, _)| *x)
                .collect();
            let range = match (acc.first(), acc.last()) {
                (Some(lo), Some(hi)) => {
                    format!("accepted {} .. {}", fmt_offset(*lo), fmt_offset(*hi))
                }
                _ => "nothing accepted".to_string(),
            };
            out.push_str(&format!(
                "{:>w$} |{map}| {range}\n",
                fobsim_core::time::format_duration_ms(*d)
            ));
        }
        out
    }

    /// The map as an SVG document.
    ///
    /// # Errors
    /// [`SweepError::Draw`] if plotters fails.
    pub fn svg(&self) -> Result<String, SweepError> {
        use plotters::prelude::*;
        let cols = self.spec.offsets_ms.len();
        let rows = self.spec.delays_ms.len();
        let cell_w = 12u32;
        let cell_h = 18u32;
        let (left, top, bottom, right) = (150u32, 60u32, 70u32, 30u32);
        let width = left + right + cell_w * u32::try_from(cols).unwrap_or(1);
        let height = top + bottom + cell_h * u32::try_from(rows).unwrap_or(1);
        let mut svg = String::new();
        {
            let draw = |e: DrawingAreaErrorKind<_>| SweepError::Draw(format!("{e:?}"));
            let root = SVGBackend::with_string(&mut svg, (width, height)).into_drawing_area();
            root.fill(&WHITE).map_err(draw)?;
            let title = format!(
                "drift acceptance map: {} ({}), y = {}",
                self.engine,
                self.spec.model,
                self.y_label()
            );
            root.draw(&Text::new(title, (10, 10), ("sans-serif", 16).into_font()))
                .map_err(draw)?;
            let (a, r, l) = self.counts();
            // Okabe-Ito colours (told apart with any colour vision) with a
            // shape each on top, so that colour is never the only cue:
            // accepted plain blue, rejected light orange with a stroke,
            // locked dark vermillion with a cross.
            let legend = format!(
                "blue: accepted ({a})   orange /: rejected ({r})   vermillion x: locked ({l})"
            );
            root.draw(&Text::new(legend, (10, 32), ("sans-serif", 12).into_font()))
                .map_err(draw)?;
            for (ri, row) in self.cells.iter().enumerate() {
                for (ci, c) in row.iter().enumerate() {
                    let x0 = i32::try_from(left + cell_w * ci as u32).unwrap_or(0);
                    let y0 = i32::try_from(top + cell_h * ri as u32).unwrap_or(0);
                    let (x1, y1) = (x0 + cell_w as i32 - 1, y0 + cell_h as i32 - 1);
                    root.draw(&Rectangle::new([(x0, y0), (x1, y1)], c.color().filled()))
                        .map_err(draw)?;
                    let ink = BLACK.stroke_width(1);
                    if matches!(c, Cell::Rejected) {
                        root.draw(&PathElement::new(
                            vec![(x0 + 2, y1 - 2), (x1 - 2, y0 + 2)],
                            ink,
                        ))
                        .map_err(draw)?;
                    }
                    if matches!(c, Cell::Locked) {
                        let white = WHITE.stroke_width(1);
                        root.draw(&PathElement::new(
                            vec![(x0 + 2, y1 - 2), (x1 - 2, y0 + 2)],
                            white,
                        ))
                        .map_err(draw)?;
                        root.draw(&PathElement::new(
                            vec![(x0 + 2, y0 + 2), (x1 - 2, y1 - 2)],
                            white,
                        ))
                        .map_err(draw)?;
                    }
                }
                let label = fobsim_core::time::format_duration_ms(self.spec.delays_ms[ri]);
                let y = i32::try_from(top + cell_h * ri as u32 + 3).unwrap_or(0);
                root.draw(&Text::new(label, (10, y), ("sans-serif", 11).into_font()))
                    .map_err(draw)?;
            }
            // X labels every 5 minutes (or at the ends).
            for (ci, x) in self.spec.offsets_ms.iter().enumerate() {
                if x % 300_000 == 0 || ci == 0 || ci + 1 == cols {
                    let px = i32::try_from(left + cell_w * ci as u32).unwrap_or(0);
                    let py = i32::try_from(top + cell_h * rows as u32 + 6).unwrap_or(0);
                    root.draw(&Text::new(
                        fmt_offset(*x),
                        (px, py),
                        ("sans-serif", 11).into_font(),
                    ))
                    .map_err(draw)?;
                }
            }
            let py = i32::try_from(top + cell_h * rows as u32 + 30).unwrap_or(0);
            root.draw(&Text::new(
                "device clock offset (device - true time)",
                (i32::try_from(left).unwrap_or(0), py),
                ("sans-serif", 12).into_font(),
            ))
            .map_err(draw)?;
            root.present().map_err(draw)?;
        }
        Ok(svg)
    }
}
