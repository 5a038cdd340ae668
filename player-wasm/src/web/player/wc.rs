//! The player's WebCodecs wiring (docs/WEBCODECS.md): the sink's setup, the presentation
//! wake-ups, its statistics and feedback, and the fallback to MSE. A child of the player
//! module, so it works on the player's own state.

use super::*;

/// The WebCodecs path (docs/WEBCODECS.md).
impl Inner {
    pub(super) fn ensure_wc(&mut self) {
        if self.wc.is_some() {
            return;
        }
        let w = self.me.clone();
        let emit: webcodecs::Emit = Rc::new(move |e| with(&w, move |p| p.on_wc_event(e)));
        let w = self.me.clone();
        let wake: Rc<dyn Fn()> = Rc::new(move || with(&w, |p| p.wc_present()));
        self.wc = Some(WcSink::new(
            emit,
            wake,
            self.video.clone(),
            self.opts.fail_decoder_after,
        ));
    }

    /// The delay D at which frames are presented: the relay's shared delay (with `sync`),
    /// else the page's target, else [`WC_TARGET_MS`]; never under what this viewer can make
    /// (frames would arrive or decode too late and be dropped), except that it keeps the
    /// shared delay while its floor is within [`WC_FLOOR_TOLERANCE_MS`] of it (in sync with
    /// the others, the relay raising D meanwhile).
    pub(super) fn wc_delay_ms(&self) -> f64 {
        let announced = self.session.announced_delay_ms() as f64;
        if self.opts.sync && announced > 0.0 {
            if self.wc_floor_ms <= announced + WC_FLOOR_TOLERANCE_MS {
                return announced;
            }
            return self.wc_floor_ms;
        }
        let base = if self.opts.target_set {
            self.opts.target_latency_ms
        } else {
            WC_TARGET_MS
        };
        base.max(self.wc_floor_ms)
    }

    /// How long a decoded frame must be ready before its due time, ms (the video pipe's
    /// [`webcodecs::video::VideoPipe::ready_lead_ms`]; before there is one, a refresh and the
    /// timer slack).
    fn wc_ready_lead_ms(&self) -> f64 {
        self.wc
            .as_ref()
            .and_then(|wc| wc.video.as_ref())
            .map_or(REFRESH_MS + WC_SLACK_MS, |v| v.ready_lead_ms())
    }

    /// From writing a frame to its display, ms: measured, else one refresh.
    pub(super) fn wc_display_ms(&self) -> f64 {
        self.wc
            .as_ref()
            .and_then(|wc| wc.video.as_ref())
            .and_then(|v| v.display.delay_ms())
            .unwrap_or(REFRESH_MS)
    }

    /// performance.now() time (ms) at which the frame at media time `pts_ms` was ingested by
    /// the relay: its relay ingest time, converted from the relay clock to the local one.
    fn ingest_local_ms(&self, pts_ms: f64) -> Option<f64> {
        let ingest_us = self.session.anchors.ingest_us(pts_ms)?;
        let offset_us = self.session.clock.offset_us()? as f64;
        Some((ingest_us - offset_us) / 1000.0 - self.time_origin)
    }

    /// performance.now() time (ms) at which the frame at media time `pts_ms` is due: its
    /// ingest time + D.
    fn due_ms(&self, pts_ms: f64) -> Option<f64> {
        Some(self.ingest_local_ms(pts_ms)? + self.wc_delay_ms())
    }

    pub(super) fn wc_action(&mut self, a: Action) {
        self.ensure_wc();
        let Some(wc) = &mut self.wc else { return };
        match wc.admit(a) {
            Err(f) => self.fallback(f),
            Ok(None) => {}
            Ok(Some(a)) => self.wc_apply(a),
        }
    }

    pub(super) fn wc_apply(&mut self, a: Action) {
        let now = now_ms();
        let late = match &a {
            Action::Decode(c) => self.due_ms(c.pts_ms).map(|d| {
                let ahead = self
                    .wc
                    .as_ref()
                    .and_then(|wc| wc.video.as_ref())
                    .map_or(REFRESH_MS, |v| v.write_ahead_ms());
                now - (d - ahead)
            }),
            _ => None,
        };
        let Some(wc) = &mut self.wc else { return };
        let r = match a {
            Action::Configure(s) => wc.configure(s),
            Action::Decode(c) => wc.decode(&c, late, now),
            _ => Ok(()),
        };
        if let Err(f) = r {
            self.fallback(f);
        }
    }

    pub(super) fn on_wc_event(&mut self, e: WcEvent) {
        let now = now_ms();
        let Some(wc) = &mut self.wc else { return };
        let r = match e {
            WcEvent::Frame(f) => {
                if wc.simulated_failure() {
                    drop(f);
                    wc.failed(Some(TrackType::Video))
                } else {
                    wc.failures[0] = 0;
                    // Due on the glass at ingest + D; the pipe writes it ahead of that.
                    let due = self.due_ms(f.pts_ms()).unwrap_or(now);
                    if let Some(v) = self.wc.as_mut().and_then(|wc| wc.video.as_mut()) {
                        v.on_output(f, due, now);
                    }
                    Ok(())
                }
            }
            WcEvent::Audio(a) => {
                wc.failures[1] = 0;
                // Due with the picture of the same instant: at its due time plus where the
                // video actually lands (its refresh, up to half a refresh either side), plus
                // the lag when audio cannot be on time.
                let lag = self.audio_lag.lag_ms();
                let shift = self.wc_video_landing_ms();
                let due = self
                    .due_ms(a.0.timestamp() / 1000.0)
                    .map(|d| d + lag + shift);
                match (due, self.wc.as_mut().and_then(|wc| wc.audio.as_mut())) {
                    (Some(due), Some(pipe)) => pipe.schedule(a, due, now),
                    (None, Some(pipe)) => pipe.dropped += 1,
                    _ => {}
                }
                Ok(())
            }
            WcEvent::Error(track, msg) => {
                web_sys::console::warn_1(
                    &format!(
                        "lockstep-player: {} decoder error: {msg}",
                        if track == TrackType::Video {
                            "video"
                        } else {
                            "audio"
                        }
                    )
                    .into(),
                );
                wc.failed(Some(track))
            }
            WcEvent::Displayed {
                presented,
                expected,
                media_ms,
            } => {
                if let Some(v) = wc.video.as_mut() {
                    v.display.on_displayed(presented, expected, media_ms);
                    v.refresh.on_displayed(presented, expected, media_ms, now);
                }
                Ok(())
            }
            WcEvent::Refresh(t) => {
                let Some(v) = wc.video.as_mut() else { return };
                v.refresh.on_animation_frame(t);
                // Also a chance to write a frame whose timer is late (a busy main thread runs
                // animation frames before timers).
                if v.has_due(now) {
                    self.wc_present();
                }
                return;
            }
            WcEvent::Supported { ok, codec } => match wc.on_supported(ok, &codec) {
                Ok(actions) => {
                    for a in actions {
                        self.wc_apply(a);
                    }
                    Ok(())
                }
                Err(f) => Err(f),
            },
        };
        if let Err(f) = r {
            self.fallback(f);
        }
    }

    /// The presentation timer fired: write the frames now due.
    pub(super) fn wc_present(&mut self) {
        let now = now_ms();
        let Some(v) = self.wc.as_mut().and_then(|wc| wc.video.as_mut()) else {
            return;
        };
        if v.present(now) == 0 {
            return;
        }
        self.wc_last_present = now;
        if self.startup_ms.is_none() {
            self.startup_ms = Some(now - self.created_ms);
            // Frames of the join backlog arrived late, and queued in the decoder, by design:
            // measure from here on.
            self.arrival.reset();
            self.audio_arrival.reset();
            if let Some(v) = self.wc.as_mut().and_then(|wc| wc.video.as_mut()) {
                v.reset_decode_times();
            }
        }
        self.started = true;
        if self.stalled || self.state != State::Playing && self.state != State::Ended {
            self.stalled = false;
            self.set_state(State::Playing);
        }
    }

    pub(super) fn wc_tick(&mut self) {
        let now = now_ms();
        let Some(wc) = &self.wc else { return };
        let display = self.wc_display_ms();
        let ready_lead = self.wc_ready_lead_ms();
        let (on_screen, has_video) = match &wc.video {
            // The playhead: the frame last written, advanced by the time since it was
            // written, less the display delay (it reaches the screen that much later).
            Some(v) => (
                v.on_screen.map(|(pts, at)| pts + (now - at) - display),
                true,
            ),
            None => (None, false),
        };
        let decode_p95 = wc.video.as_ref().and_then(|v| v.decode_p95());
        let audio_playing = wc.audio.as_ref().is_some_and(|a| a.scheduled > 0);
        // Audio-only: playing once audio is scheduled.
        if !has_video && self.state != State::Playing && self.state != State::Ended && audio_playing
        {
            if self.startup_ms.is_none() {
                self.startup_ms = Some(now - self.created_ms);
                self.arrival.reset();
                self.audio_arrival.reset();
            }
            self.set_state(State::Playing);
        }
        if let Some(startup) = self.startup_ms {
            if self.wc_settled_ms.is_none() && now - self.created_ms - startup >= WC_SETTLE_MS {
                self.wc_settled_ms = Some(now);
                self.arrival.reset();
                self.audio_arrival.reset();
                self.wc_floor_ms = 0.0;
                if let Some(wc) = self.wc.as_mut() {
                    if let Some(v) = wc.video.as_mut() {
                        v.reset_decode_times();
                    }
                    if let Some(a) = wc.audio.as_mut() {
                        a.reset_decode_times();
                    }
                }
            }
            // The floor rises at once and decays slowly (1 %/tick ≈ 5 s).
            let need = self.arrival.quantile(0.95).unwrap_or(0.0).max(0.0)
                + decode_p95.unwrap_or(0.0)
                + ready_lead;
            self.wc_floor_ms = if need > self.wc_floor_ms {
                need
            } else {
                self.wc_floor_ms + (need - self.wc_floor_ms) * 0.01
            };
            // Audio may trail a picture; with no picture there is nothing to trail.
            match self.wc_audio_need_ms() {
                Some(need) if has_video => {
                    // Audio follows the video's landing, which may be before D.
                    let d = self.wc_delay_ms() + self.wc_video_landing_ms();
                    self.audio_lag.update(need, d);
                }
                _ => self.audio_lag.reset(),
            }
        }
        let now_us = local_now_us();
        self.last_latency = match (on_screen, has_video) {
            (Some(pts), true) => self.session.latency_ms(pts, now_us),
            // Audio only: the audio now heard was due D ago.
            (_, false) if self.startup_ms.is_some() => Some(self.wc_delay_ms()),
            _ => None,
        };
        if has_video {
            if self.video.paused() && self.state != State::Ended {
                let _ = self.video.play().map(|p| p.catch(webcodecs::ignore()));
            }
            if self.state == State::Playing && now - self.wc_last_present > 1000.0 {
                self.stalled = true;
                self.stalls += 1;
                self.set_state(State::Stalled);
            }
        }
    }

    /// Where the video lands against its due time, ms (the refresh it is written for, within
    /// a refresh either side; 0 before it is known): audio follows it.
    fn wc_video_landing_ms(&self) -> f64 {
        let refresh = self.wc_refresh_ms().unwrap_or(REFRESH_MS);
        self.wc
            .as_ref()
            .and_then(|wc| wc.video.as_ref())
            .and_then(|v| v.present_error_ms)
            .unwrap_or(0.0)
            .clamp(-refresh, refresh)
    }

    /// Where the stream's ingest times fall on this display's refresh grid (Feedback 1.4):
    /// the last written frame's ingest time on the local clock against the grid. `None` until
    /// the grid and a frame are known.
    fn wc_refresh_phase(&self) -> Option<wire::RefreshPhase> {
        let v = self.wc.as_ref()?.video.as_ref()?;
        let (pts, _) = v.on_screen?;
        let (period, phase) = v.refresh.phase(self.ingest_local_ms(pts)?, now_ms())?;
        let period_us = (period * 1000.0).round() as u32;
        wire::RefreshPhase::new(
            period_us,
            ((phase * 1000.0) as u32).min(period_us.saturating_sub(1)),
        )
    }

    /// The display's refresh period, ms, once measured.
    fn wc_refresh_ms(&self) -> Option<f64> {
        self.wc.as_ref()?.video.as_ref()?.refresh.period_ms()
    }

    /// The least delay at which audio is heard on time: its arrival p99, decode p95 and
    /// output path (base + output latency). `None` without audio or arrivals yet.
    fn wc_audio_need_ms(&self) -> Option<f64> {
        let audio = self.wc.as_ref()?.audio.as_ref()?;
        let out = audio.output_latency_ms();
        let decode = audio.decode_p95().unwrap_or(AUDIO_DECODE_MS);
        // p99, not the video's p95: a late audio frame is a gap in the sound, where a late
        // picture is one frame not shown (measured at p95: 5–7 of 100 Opus frames a second
        // dropped). Not the window's latest either: single late frames then set D (measured:
        // D 35–50 ms, glass-to-glass p50 42–43 in two of four runs); the audio pipe starts a
        // frame that comes a little late at once instead (`control::audio_chain`).
        let arrival = self.audio_arrival.quantile(0.99)?.max(0.0);
        Some(arrival + decode + out + AUDIO_SLACK_MS)
    }

    /// What this viewer needs to present on time: for video, arrival p95 plus decode p95 and
    /// the lead its frames are written with (on the refresh grid: the pipeline's depth in
    /// refreshes and the write margin); for audio, what it needs less the most it may
    /// trail the video ([`AudioLag`]): audio that arrives later than that is played late, not
    /// D raised for it (an audio-only stream gets its whole need).
    pub(super) fn wc_required_ms(&self) -> f64 {
        let decode = self
            .wc
            .as_ref()
            .and_then(|wc| wc.video.as_ref())
            .and_then(|v| v.decode_p95())
            .unwrap_or(0.0);
        let video = self.arrival.required_ms(decode + self.wc_ready_lead_ms());
        let has_video = self.wc.as_ref().is_some_and(|wc| wc.video.is_some());
        let audio = self.wc_audio_need_ms().map(|need| {
            if has_video {
                // Audio follows the video's landing, on the refresh grid.
                let landing = self.wc_delay_ms() + self.wc_video_landing_ms();
                let period = self.wc_refresh_ms().unwrap_or(0.0);
                AudioLag::min_delay_on_grid_ms(need, landing, period)
            } else {
                need
            }
        });
        match (video, audio) {
            (Some(v), Some(a)) => v.max(a),
            (Some(x), None) | (None, Some(x)) => x,
            (None, None) => WC_TARGET_MS,
        }
    }

    pub(super) fn wc_feedback(&mut self) {
        let bw = self.bandwidth_kbps();
        let (decoded, dropped, buffer) =
            self.wc
                .as_ref()
                .and_then(|wc| wc.video.as_ref())
                .map_or((0, 0, 0.0), |v| {
                    (
                        v.decoded as u32,
                        (v.dropped_late + v.dropped_chunks) as u32,
                        v.queued() as f64 * v.frame_ms,
                    )
                });
        let fb = wire::Feedback {
            buffer_ms: buffer as u32,
            latency_ms: self.last_latency.map(|l| l.round() as i32),
            playback_rate_milli: 1000,
            decoded_frames: decoded,
            dropped_frames: dropped,
            bytes_received: self.session.stats.bytes_received,
            bandwidth_kbps: bw as u32,
            stalls: self.stalls,
            mode: wire::MODE_WEBCODECS,
            sync_error_ms: self
                .last_latency
                .map(|l| (l - self.wc_delay_ms()).round() as i32),
            rtt_us: self
                .session
                .clock
                .rtt_us()
                .map(|r| r.clamp(0, u32::MAX as i64 - 1) as u32),
            // Not in the start's transient: the join backlog arrives late by design, and the
            // page is busy.
            target_ms: self
                .wc_settled_ms
                .filter(|&at| now_ms() - at >= WC_REPORT_AFTER_MS)
                .map(|_| self.wc_required_ms().round() as u32),
            refresh: self.wc_refresh_phase(),
        };
        if let Some(s) = &self.socket {
            s.send(&Message::Feedback(fb).to_bytes());
        }
        let stats = self.stats_object();
        self.events.push(("stats", stats));
    }

    pub(super) fn wc_stats(&self, set: &dyn Fn(&str, JsValue)) {
        let num = |v: Option<f64>| v.map_or(JsValue::NULL, JsValue::from_f64);
        let Some(wc) = &self.wc else { return };
        set("openFrames", JsValue::from_f64(owned::open_frames() as f64));
        set("playbackRate", JsValue::from_f64(1.0));
        set(
            "syncErrorMs",
            num(self.last_latency.map(|l| l - self.wc_delay_ms())),
        );
        set("decoderFailures", JsValue::from_f64(wc.failures[0] as f64));
        if let Some(v) = &wc.video {
            set("framesPresented", JsValue::from_f64(v.presented as f64));
            set(
                "framesDroppedLate",
                JsValue::from_f64(v.dropped_late as f64),
            );
            set("chunksSkipped", JsValue::from_f64(v.dropped_chunks as f64));
            set("decodedFrames", JsValue::from_f64(v.decoded as f64));
            set(
                "droppedFrames",
                JsValue::from_f64((v.dropped_late + v.dropped_chunks) as f64),
            );
            set(
                "decodeQueueSize",
                JsValue::from_f64(v.decode_queue_size() as f64),
            );
            set("decodeP95Ms", num(v.decode_p95()));
            set("presentErrorMs", num(v.present_error_ms));
            set("displayDelayMs", num(v.display.delay_ms()));
            set("refreshPeriodMs", num(v.refresh.period_ms()));
            set("writeMarginMs", JsValue::from_f64(v.refresh.margin_ms()));
            set(
                "refreshMisses",
                JsValue::from_f64(v.refresh.misses() as f64),
            );
            set("refreshDepth", JsValue::from_f64(v.refresh.depth() as f64));
            set(
                "bufferMs",
                JsValue::from_f64(v.queued() as f64 * v.frame_ms),
            );
        }
        if let Some(a) = &wc.audio {
            set("audioContext", JsValue::from_str(a.state()));
            set("audioScheduled", JsValue::from_f64(a.scheduled as f64));
            set("audioDropped", JsValue::from_f64(a.dropped as f64));
            // Audio is scheduled at the video's landing + the lag (see `on_wc_event`): the
            // offset is the lag, the audio's start error, and how far the video's landing
            // has moved since (the same smoothed figure, so ~0). > 0 when audio leaves later.
            let video_err = wc
                .video
                .as_ref()
                .and_then(|v| v.present_error_ms)
                .unwrap_or(0.0);
            let shift = self.wc_video_landing_ms();
            let lag = self.audio_lag.lag_ms();
            set("audioLagMs", JsValue::from_f64(lag));
            set("audioArrivalP95Ms", num(self.audio_arrival.quantile(0.95)));
            set("audioDecodeP95Ms", num(a.decode_p95()));
            set(
                "avOffsetMs",
                num(a.error_ms.map(|e| lag + e + shift - video_err)),
            );
        }
    }

    /// WebCodecs failed: tear its sink down, switch the session to MSE and reconnect so the
    /// relay resends StreamInfo, configurations and the GOP. No page reload.
    pub(super) fn fallback(&mut self, f: Fallback) {
        web_sys::console::warn_1(
            &format!("lockstep-player: WebCodecs: {}; falling back to MSE", f.0).into(),
        );
        if let Some(wc) = self.wc.take() {
            wc.close();
        }
        self.video.set_src_object(None);
        self.session.switch_sink(SinkKind::Mse);
        self.fallbacks += 1;
        self.fallback_reason = Some(f.0.clone());
        self.started = false;
        self.wc_floor_ms = 0.0;
        self.wc_settled_ms = None;
        self.arrival.reset();
        self.audio_arrival.reset();
        self.audio_lag.reset();
        self.jitter.iter_mut().for_each(ArrivalJitter::reset);
        self.controller.reset();
        self.events.push(("fallback", JsValue::from_str(&f.0)));
        if !mse::available() {
            self.fail("this browser has no Media Source Extensions to fall back to".into());
            return;
        }
        self.burst_pings.clear();
        self.socket = None;
        self.connect();
    }
}
