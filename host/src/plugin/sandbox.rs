//! The wasmtime engine, per-call stores and the limits every call runs under.

use std::collections::BTreeMap;
use std::convert::Infallible;
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
use super::imports::check_imports;
use super::manifest::{LimitOverrides, Manifest};
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
    /// Consecutive failed calls (traps, exhausted limits, invalid output)
    /// after which a plugin is disabled for the rest of the run; 0 never
    /// disables it. Errors a plugin returns on purpose do not count.
    pub max_consecutive_failures: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            fuel: 20_000_000_000,
            timeout_secs: 60.0,
            memory_bytes: 512 * 1024 * 1024,
            max_log_lines: 200,
            max_consecutive_failures: 5,
        }
    }
}

impl Limits {
    /// Returns these limits lowered by `overrides`. An override above the
    /// current limit keeps the current one and is returned as a message.
    pub fn lowered(&self, overrides: &LimitOverrides) -> (Limits, Vec<String>) {
        let mut limits = self.clone();
        let mut ignored = Vec::new();
        if let Some(fuel) = overrides.fuel {
            lower(&mut limits.fuel, fuel, "fuel", &mut ignored);
        }
        if let Some(seconds) = overrides.timeout_secs {
            lower(&mut limits.timeout_secs, seconds, "timeout_secs", &mut ignored);
        }
        if let Some(bytes) = overrides.memory_bytes {
            lower(&mut limits.memory_bytes, bytes, "memory_bytes", &mut ignored);
        }
        (limits, ignored)
    }
}

fn lower<T: PartialOrd + Copy + std::fmt::Display>(limit: &mut T, requested: T, name: &str, ignored: &mut Vec<String>) {
    if requested <= *limit {
        *limit = requested;
    } else {
        ignored.push(format!(
            "{name} = {requested} is above the host limit {limit}; keeping {limit}",
            limit = *limit
        ));
    }
}

/// Context of the calls of one plugin handle besides their arguments: the
/// settings the run gives the plugin (the `setting` import) and the counters
/// its calls add to (the `tally` import).
#[derive(Debug, Clone, Default)]
pub struct CallScope {
    pub settings: Arc<BTreeMap<String, String>>,
    pub tallies: Arc<Mutex<BTreeMap<String, u64>>>,
}

impl CallScope {
    pub fn with_settings(settings: BTreeMap<String, String>) -> Self {
        Self {
            settings: Arc::new(settings),
            tallies: Arc::default(),
        }
    }

    /// Returns the counters added so far.
    pub fn tallies(&self) -> BTreeMap<String, u64> {
        self.tallies.lock().map(|t| t.clone()).unwrap_or_default()
    }
}

/// Number and guest-plus-host time of one plugin's calls.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CallStats {
    pub calls: u64,
    pub time: Duration,
}

/// Per-store state: the WASI context (which grants nothing), the memory cap,
/// the model for host imports and the guest-time account.
pub struct PluginState {
    pub(super) plugin: Arc<str>,
    pub(super) model: Option<SharedModel>,
    pub(super) embedder: Option<SharedEmbedder>,
    pub(super) scope: CallScope,
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

/// SplitMix64 from a fixed seed, the source of `wasi:random`: plugins that
/// use a `HashMap` get the same hash keys in every call.
struct FixedSeedRandom(u64);

impl rand_core::TryRng for FixedSeedRandom {
    type Error = Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        Ok((self.try_next_u64()? >> 32) as u32)
    }

    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        Ok(z ^ (z >> 31))
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        for chunk in dst.chunks_mut(8) {
            let bytes = self.try_next_u64()?.to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
        Ok(())
    }
}

/// Compiles plugin components and runs their calls under [`Limits`].
pub struct Sandbox {
    engine: Engine,
    linker: Linker<PluginState>,
    limits: Limits,
    plugin_limits: BTreeMap<String, LimitOverrides>,
    model: Option<SharedModel>,
    stats: Mutex<BTreeMap<String, CallStats>>,
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
            plugin_limits: BTreeMap::new(),
            model: None,
            stats: Mutex::new(BTreeMap::new()),
            embedder: None,
        })
    }

    /// Sets per-plugin limits, by plugin name, that lower the host limits
    /// for that plugin.
    pub fn with_plugin_limits(mut self, plugin_limits: BTreeMap<String, LimitOverrides>) -> Self {
        self.plugin_limits = plugin_limits;
        self
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

    /// Returns the host limits, the maximum for every plugin.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Returns the limits of one plugin: the host limits lowered by its
    /// manifest's `[limits]`, then by the user's limits for that plugin.
    pub fn limits_for(&self, manifest: &Manifest) -> Limits {
        let (limits, ignored) = self.limits.lowered(&manifest.limits);
        for message in ignored {
            tracing::warn!(plugin = %manifest.name, "manifest limit ignored: {message}");
        }
        let Some(user) = self.plugin_limits.get(&manifest.name) else {
            return limits;
        };
        let (limits, ignored) = limits.lowered(user);
        for message in ignored {
            tracing::warn!(plugin = %manifest.name, "plugin limit ignored: {message}");
        }
        limits
    }

    /// Returns the number and time of the calls made so far, by plugin.
    pub fn call_stats(&self) -> BTreeMap<String, CallStats> {
        self.stats.lock().map(|stats| stats.clone()).unwrap_or_default()
    }

    /// Compiles a component, checks its imports against the import policy
    /// and the manifest's capabilities, and resolves them against the host.
    pub(super) fn prepare(&self, manifest: &Manifest, bytes: &[u8]) -> Result<InstancePre<PluginState>, PluginError> {
        let plugin = &manifest.name;
        let component = Component::new(&self.engine, bytes).map_err(|e| load_error(plugin, e))?;
        check_imports(&self.engine, &component, manifest)?;
        self.linker
            .instantiate_pre(&component)
            .map_err(|e| load_error(plugin, e))
    }

    /// Returns the wasmtime engine plugins are compiled for.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Runs one plugin call in a fresh store under `limits` and classifies
    /// any failure.
    pub(super) fn call<R>(
        &self,
        plugin: &str,
        limits: &Limits,
        scope: &CallScope,
        call: &'static str,
        item: &str,
        run: impl FnOnce(&mut Store<PluginState>) -> wasmtime::Result<R>,
    ) -> Result<R, PluginError> {
        let started = Instant::now();
        let result = self.call_in_store(plugin, limits, scope, call, item, run);
        self.record(plugin, started.elapsed());
        result
    }

    fn call_in_store<R>(
        &self,
        plugin: &str,
        limits: &Limits,
        scope: &CallScope,
        call: &'static str,
        item: &str,
        run: impl FnOnce(&mut Store<PluginState>) -> wasmtime::Result<R>,
    ) -> Result<R, PluginError> {
        let mut store = self
            .new_store(plugin, limits, scope)
            .map_err(|e| call_error(plugin, call, item, trap(e, String::new())))?;
        match run(&mut store) {
            Ok(value) => Ok(value),
            Err(error) => Err(call_error(plugin, call, item, classify(limits, &store, error))),
        }
    }

    fn record(&self, plugin: &str, elapsed: Duration) {
        if let Ok(mut stats) = self.stats.lock() {
            let entry = stats.entry(plugin.to_string()).or_default();
            entry.calls += 1;
            entry.time += elapsed;
        }
    }

    fn new_store(&self, plugin: &str, limits: &Limits, scope: &CallScope) -> wasmtime::Result<Store<PluginState>> {
        let stderr = MemoryOutputPipe::new(OUTPUT_CAPTURE_BYTES);
        let wasi = WasiCtxBuilder::new()
            .stdout(stderr.clone())
            .stderr(stderr.clone())
            .wall_clock(FrozenWallClock)
            .monotonic_clock(FrozenMonotonicClock)
            .secure_random(FixedSeedRandom(0))
            .insecure_random(FixedSeedRandom(1))
            .insecure_random_seed(0)
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .socket_addr_check(|_, _| Box::pin(async { false }))
            .build();

        let limit = Duration::from_secs_f64(limits.timeout_secs);
        let state = PluginState {
            plugin: plugin.into(),
            model: self.model.clone(),
            embedder: self.embedder.clone(),
            scope: scope.clone(),
            log_lines: 0,
            max_log_lines: limits.max_log_lines,
            wasi,
            table: ResourceTable::new(),
            memory: MemoryCap {
                max_bytes: limits.memory_bytes as usize,
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
        store.set_fuel(limits.fuel)?;
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
}

fn classify(limits: &Limits, store: &Store<PluginState>, error: wasmtime::Error) -> FailureKind {
    let state = store.data();
    if error.downcast_ref::<DeadlineExceeded>().is_some() {
        return FailureKind::Timeout {
            seconds: limits.timeout_secs,
        };
    }
    if state.memory.exceeded {
        return FailureKind::MemoryLimit {
            bytes: limits.memory_bytes,
        };
    }
    match error.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => FailureKind::OutOfFuel { fuel: limits.fuel },
        Some(Trap::StackOverflow) => FailureKind::StackOverflow,
        _ => trap(error, captured_output(&state.stderr)),
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
