//! The wasmtime engine, per-call stores and the limits every call runs under.

use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use wasmtime::component::{Component, InstancePre, Linker, ResourceTable};
use wasmtime::{Config, Engine, ResourceLimiter, Store, Trap, UpdateDeadline};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{HostMonotonicClock, HostWallClock, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use super::bindings::task::TaskPlugin;
use super::error::{FailureKind, PluginError};
use crate::model::{ChatModel, LazyEmbedder};

/// The model plugins reach through the `generate` and `logprobs` imports.
pub type SharedModel = Arc<Mutex<Box<dyn ChatModel>>>;

/// The sentence encoder plugins reach through the `embed` import.
pub type SharedEmbedder = Arc<LazyEmbedder>;

/// How often the epoch ticker advances; the resolution of call deadlines.
const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Bytes of guest stdout and stderr kept per call, for error messages.
const OUTPUT_CAPTURE_BYTES: usize = 64 * 1024;

/// Resource limits applied to every plugin call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Limits {
    /// Fuel units per call; one unit is roughly one wasm instruction.
    pub fuel: u64,
    /// Wall-clock seconds of guest code per call. Time spent in host imports
    /// such as `generate` does not count.
    pub timeout_secs: f64,
    /// Maximum linear memory of one instance, in bytes.
    pub memory_bytes: u64,
    /// Log lines a call may emit before the rest are dropped.
    pub max_log_lines: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            fuel: 20_000_000_000,
            timeout_secs: 60.0,
            memory_bytes: 512 * 1024 * 1024,
            max_log_lines: 200,
        }
    }
}

/// Per-store state: the WASI context (which grants nothing), the memory cap,
/// the model for host imports and the guest-time account.
pub struct PluginState {
    pub(super) plugin: Arc<str>,
    pub(super) model: Option<SharedModel>,
    pub(super) embedder: Option<SharedEmbedder>,
    pub(super) log_lines: u32,
    pub(super) max_log_lines: u32,
    wasi: WasiCtx,
    table: ResourceTable,
    memory: MemoryCap,
    clock: GuestClock,
    stderr: MemoryOutputPipe,
}

impl WasiView for PluginState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl PluginState {
    /// Runs a host import, keeping its time out of the guest's deadline.
    pub(super) fn in_host<R>(&mut self, f: impl FnOnce(&mut Self) -> R) -> R {
        let started = Instant::now();
        let result = f(self);
        self.clock.host_time += started.elapsed();
        result
    }
}

/// Caps linear memory and remembers whether the cap was hit, so that the
/// trap that follows a failed allocation is reported as a memory error.
struct MemoryCap {
    max_bytes: usize,
    exceeded: bool,
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.max_bytes {
            self.exceeded = true;
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000)
    }
}

/// Wall-clock account of one call: guest time is the elapsed time minus
/// the time spent inside host imports.
struct GuestClock {
    started: Instant,
    host_time: Duration,
    limit: Duration,
}

impl GuestClock {
    fn guest_time(&self) -> Duration {
        self.started.elapsed().saturating_sub(self.host_time)
    }
}

/// Raised from the epoch callback when a call's guest time runs out.
#[derive(Debug, thiserror::Error)]
#[error("guest time limit exceeded")]
struct DeadlineExceeded;

/// A wall clock frozen at the Unix epoch: plugins get no real time.
struct FrozenWallClock;

impl HostWallClock for FrozenWallClock {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }

    fn now(&self) -> Duration {
        Duration::ZERO
    }
}

/// A monotonic clock that never advances.
struct FrozenMonotonicClock;

impl HostMonotonicClock for FrozenMonotonicClock {
    fn resolution(&self) -> u64 {
        1_000_000_000
    }

    fn now(&self) -> u64 {
        0
    }
}

/// Compiles plugin components and runs their calls under [`Limits`].
pub struct Sandbox {
    engine: Engine,
    linker: Linker<PluginState>,
    limits: Limits,
    model: Option<SharedModel>,
    embedder: Option<SharedEmbedder>,
}

impl Sandbox {
    /// Creates an engine with fuel metering and epoch interruption, and a
    /// linker that provides the `wow:plugin/host` imports plus a WASI
    /// context without files, sockets, environment or a running clock.
    pub fn new(limits: Limits) -> Result<Self, PluginError> {
        let engine = Engine::new(&engine_config()).map_err(|e| load_error("<engine>", e))?;
        start_epoch_ticker(&engine);

        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(|e| load_error("<linker>", e))?;
        TaskPlugin::add_to_linker::<_, wasmtime::component::HasSelf<_>>(&mut linker, |state| state)
            .map_err(|e| load_error("<linker>", e))?;

        Ok(Self {
            engine,
            linker,
            limits,
            model: None,
            embedder: None,
        })
    }

    /// Makes `model` available to plugins through `generate` and `logprobs`.
    pub fn with_model(mut self, model: SharedModel) -> Self {
        self.model = Some(model);
        self
    }

    /// Makes `embedder` available to plugins through `embed`.
    pub fn with_embedder(mut self, embedder: SharedEmbedder) -> Self {
        self.embedder = Some(embedder);
        self
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Compiles a component and resolves its imports against the host.
    pub(super) fn prepare(&self, plugin: &str, bytes: &[u8]) -> Result<InstancePre<PluginState>, PluginError> {
        let component = Component::new(&self.engine, bytes).map_err(|e| load_error(plugin, e))?;
        self.linker
            .instantiate_pre(&component)
            .map_err(|e| load_error(plugin, e))
    }

    /// Runs one plugin call in a fresh store and classifies any failure.
    pub(super) fn call<R>(
        &self,
        plugin: &str,
        call: &'static str,
        item: &str,
        run: impl FnOnce(&mut Store<PluginState>) -> wasmtime::Result<R>,
    ) -> Result<R, PluginError> {
        let mut store = self
            .new_store(plugin)
            .map_err(|e| call_error(plugin, call, item, trap(e, String::new())))?;
        match run(&mut store) {
            Ok(value) => Ok(value),
            Err(error) => Err(call_error(plugin, call, item, self.classify(&store, error))),
        }
    }

    fn new_store(&self, plugin: &str) -> wasmtime::Result<Store<PluginState>> {
        let stderr = MemoryOutputPipe::new(OUTPUT_CAPTURE_BYTES);
        let wasi = WasiCtxBuilder::new()
            .stdout(stderr.clone())
            .stderr(stderr.clone())
            .wall_clock(FrozenWallClock)
            .monotonic_clock(FrozenMonotonicClock)
            .insecure_random_seed(0)
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .socket_addr_check(|_, _| Box::pin(async { false }))
            .build();

        let limit = Duration::from_secs_f64(self.limits.timeout_secs);
        let state = PluginState {
            plugin: plugin.into(),
            model: self.model.clone(),
            embedder: self.embedder.clone(),
            log_lines: 0,
            max_log_lines: self.limits.max_log_lines,
            wasi,
            table: ResourceTable::new(),
            memory: MemoryCap {
                max_bytes: self.limits.memory_bytes as usize,
                exceeded: false,
            },
            clock: GuestClock {
                started: Instant::now(),
                host_time: Duration::ZERO,
                limit,
            },
            stderr,
        };

        let mut store = Store::new(&self.engine, state);
        store.limiter(|state| &mut state.memory);
        store.set_fuel(self.limits.fuel)?;
        store.set_epoch_deadline(ticks(limit));
        store.epoch_deadline_callback(|context| {
            let clock = &context.data().clock;
            let left = clock.limit.saturating_sub(clock.guest_time());
            if left.is_zero() {
                return Err(DeadlineExceeded.into());
            }
            Ok(UpdateDeadline::Continue(ticks(left)))
        });
        Ok(store)
    }

    fn classify(&self, store: &Store<PluginState>, error: wasmtime::Error) -> FailureKind {
        let state = store.data();
        if error.downcast_ref::<DeadlineExceeded>().is_some() {
            return FailureKind::Timeout {
                seconds: self.limits.timeout_secs,
            };
        }
        if state.memory.exceeded {
            return FailureKind::MemoryLimit {
                bytes: self.limits.memory_bytes,
            };
        }
        match error.downcast_ref::<Trap>() {
            Some(Trap::OutOfFuel) => FailureKind::OutOfFuel { fuel: self.limits.fuel },
            Some(Trap::StackOverflow) => FailureKind::StackOverflow,
            _ => trap(error, captured_output(&state.stderr)),
        }
    }
}

fn engine_config() -> Config {
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.consume_fuel(true);
    config.epoch_interruption(true);
    config.max_wasm_stack(1024 * 1024);
    config
}

/// Advances the engine's epoch every [`EPOCH_TICK`] until the engine is
/// dropped.
fn start_epoch_ticker(engine: &Engine) {
    let weak = engine.weak();
    thread::Builder::new()
        .name("wow-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                thread::sleep(EPOCH_TICK);
            }
        })
        .expect("spawn the epoch ticker thread");
}

fn ticks(duration: Duration) -> u64 {
    (duration.as_millis() / EPOCH_TICK.as_millis()).max(1) as u64
}

/// Returns the last line the guest printed, where Rust panics land.
fn captured_output(pipe: &MemoryOutputPipe) -> String {
    let bytes = pipe.contents();
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<&str> = text.lines().filter(|line| !line.trim().is_empty()).collect();
    let start = lines.len().saturating_sub(3);
    lines[start..].join(" | ")
}

fn trap(error: wasmtime::Error, output: String) -> FailureKind {
    let message = match error.downcast_ref::<Trap>() {
        // Rust guests keep their stack at the bottom of linear memory, so
        // overflowing it shows up as an access below address 0.
        Some(Trap::MemoryOutOfBounds) => {
            format!(
                "{} (in a Rust plugin this is usually a stack overflow from deep recursion)",
                Trap::MemoryOutOfBounds
            )
        }
        Some(trap) => trap.to_string(),
        None => format!("{error:#}"),
    };
    FailureKind::Trap { message, output }
}

fn load_error(plugin: &str, error: wasmtime::Error) -> PluginError {
    PluginError::Load {
        plugin: plugin.to_string(),
        message: format!("{error:#}"),
    }
}

pub(super) fn call_error(plugin: &str, call: &'static str, item: &str, kind: FailureKind) -> PluginError {
    PluginError::Call {
        plugin: plugin.to_string(),
        call,
        item: item.to_string(),
        kind,
    }
}
