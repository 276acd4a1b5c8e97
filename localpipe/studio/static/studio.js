// localpipe studio: the few things plain HTML cannot do. Every page works without this file;
// with it, a running run's page updates by itself, logs tail, and the DAG pans and zooms.
"use strict";

const ACTIVE = new Set(["NotStarted", "Queued", "Preparing", "Running", "Finalizing"]);

function setStatusClass(el, status) {
  for (const name of [...el.classList]) if (name.startsWith("st-")) el.classList.remove(name);
  el.classList.add("st-" + status);
}

function badge(status) {
  const span = document.createElement("span");
  span.className = "badge st-" + status;
  span.textContent = status;
  return span;
}

function seconds(start, end) {
  if (!start) return "-";
  const s = (end || Date.now() / 1000) - start;
  if (s < 60) return s.toFixed(1) + "s";
  const m = Math.floor(s / 60);
  return m < 60 ? m + "m" + String(Math.floor(s % 60)).padStart(2, "0") + "s" : Math.floor(m / 60) + "h" + String(m % 60).padStart(2, "0") + "m";
}

function liveRun(root) {
  const run = root.dataset.run;
  const byStep = new Map();
  for (const el of root.querySelectorAll("[data-step]")) {
    if (!byStep.has(el.dataset.step)) byStep.set(el.dataset.step, []);
    byStep.get(el.dataset.step).push(el);
  }
  let timeline = null;  // the timeline is fetched again (at most once a second) after a change
  const redrawTimeline = () => {
    if (timeline) return;
    timeline = setTimeout(async () => {
      try {
        const response = await fetch("/runs/" + run + "/timeline");
        if (response.ok) document.getElementById("timeline").innerHTML = await response.text();
      } finally {
        timeline = null;  // a failed fetch must not stop the timeline's redraws for good
      }
    }, 1000);
  };
  let last = null;  // running steps' durations go on between changes
  const ticker = setInterval(() => { if (last) show(last, false); }, 1000);
  // The run's status is polled (304 until it changes), not streamed: a browser opens at most six
  // connections to one server, and an event stream holds one for as long as the run goes on.
  let etag = null, ended = false;
  async function poll() {
    try {
      const response = await fetch("/runs/" + run + "/status.json", { cache: "no-store", headers: etag ? { "If-None-Match": etag } : {} });
      if (response.status === 200) {
        etag = response.headers.get("ETag");
        last = await response.json();
        show(last, true);
      }
    } catch (error) { /* the server is away for a moment: the next poll asks again */ }
    if (!ended) setTimeout(poll, 200);
  }
  poll();
  function show(data, changed) {
    document.getElementById("run-status").replaceChildren(badge(data.status));
    document.getElementById("run-duration").textContent = seconds(data.started_at, data.ended_at);
    for (const [name, step] of Object.entries(data.steps)) {
      for (const el of byStep.get(name) || []) {
        if (el.classList.contains("node") || el.classList.contains("bar")) setStatusClass(el, step.status);
        const sub = el.querySelector("[data-field=sub]");
        if (sub && step.status !== "Reused") sub.textContent = step.status + " " + (step.started_at ? seconds(step.started_at, step.ended_at) : "");
        const cell = el.querySelector("[data-field=status]");
        if (cell) cell.replaceChildren(badge(step.status));
        const took = el.querySelector("[data-field=duration]");
        if (took) took.textContent = seconds(step.started_at, step.ended_at);
        const reason = el.querySelector("[data-field=reason]");
        if (reason && step.reason && !reason.querySelector("a")) reason.textContent = step.reason;
      }
    }
    if (changed) redrawTimeline();
    if (!ACTIVE.has(data.status) && !ended) {
      ended = true;
      clearInterval(ticker);
      const cancel = document.getElementById("cancel");
      if (cancel) cancel.closest("form").remove();
      // What only the end tells (the run's error, exit codes, outputs, a sweep's best trial) is
      // in the page as the server makes it now: drawn once more, where the reader was.
      location.reload();
    }
  }
}

function liveStep(root) {
  const base = "/runs/" + root.dataset.run + "/log?step=" + encodeURIComponent(root.dataset.step) + "&stream=";
  const logs = [...root.querySelectorAll("pre[data-stream]")];
  async function poll() {
    let status = null;
    try {
      for (const pre of logs) {
        const response = await fetch(base + pre.dataset.stream + "&offset=" + pre.dataset.offset);
        if (!response.ok) throw new Error("HTTP " + response.status);
        const data = await response.json();
        status = data.status;
        if (data.text) {
          const follow = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
          pre.append(data.text);
          if (follow) pre.scrollTop = pre.scrollHeight;
        }
        pre.dataset.offset = data.offset;
      }
    } catch (error) {  // a server restarting, a network blip: the tail goes on, a little later
      setTimeout(poll, 2000);
      return;
    }
    if (status) document.getElementById("step-status").replaceChildren(badge(status));
    if (ACTIVE.has(status)) setTimeout(poll, 300);
  }
  poll();
}

// Pan (drag) and zoom (wheel) with a CSS transform of the whole drawing: the browser moves one
// composited layer per frame, however many nodes the graph has (it is drawn again, sharp, once
// the gesture pauses).
function panZoom(svg) {
  const box = svg.parentElement;
  const width = svg.width.baseVal.value, height = svg.height.baseVal.value;
  let k = Math.min(1, box.clientWidth / width), x = 0, y = 0, drag = null, moved = false, idle = null;
  box.classList.add("zoomable");
  box.style.height = Math.min(560, Math.max(height * k, 120)) + "px";
  const apply = () => {
    // Labels smaller than 5 pixels are not drawn: at 1,000 steps they are most of a frame's work.
    box.classList.toggle("far", k < 0.45);
    svg.style.willChange = "transform";
    svg.style.transform = `translate(${x}px, ${y}px) scale(${k})`;
    clearTimeout(idle);
    idle = setTimeout(() => { svg.style.willChange = "auto"; }, 250);
  };
  apply();
  svg.addEventListener("wheel", (e) => {
    e.preventDefault();
    const r = box.getBoundingClientRect();
    const f = Math.exp(-e.deltaY * 0.0015), px = e.clientX - r.left, py = e.clientY - r.top;
    x = px - (px - x) * f; y = py - (py - y) * f; k *= f;
    apply();
  }, { passive: false });
  svg.addEventListener("pointerdown", (e) => { drag = [e.clientX, e.clientY]; moved = false; });
  svg.addEventListener("pointermove", (e) => {
    if (!drag) return;
    const dx = e.clientX - drag[0], dy = e.clientY - drag[1];
    if (Math.abs(dx) + Math.abs(dy) > 3) moved = true;
    if (!moved) return;
    x += dx; y += dy; drag = [e.clientX, e.clientY];
    apply();
  });
  svg.addEventListener("pointerup", () => { drag = null; });
  svg.addEventListener("click", (e) => { if (moved) { e.preventDefault(); moved = false; } }, true);
}

function comparePicker(form) {
  form.addEventListener("submit", (e) => {
    const picked = [...form.querySelectorAll("input.pick:checked")].map((i) => i.value);
    e.preventDefault();
    if (picked.length !== 2) { alert("Choose exactly two runs to compare."); return; }
    location.href = "/compare?a=" + picked[1] + "&b=" + picked[0];
  });
}

document.addEventListener("DOMContentLoaded", () => {
  const run = document.getElementById("run");
  if (run && run.dataset.live === "yes") liveRun(run);
  const step = document.getElementById("step");
  if (step && step.dataset.live === "yes") liveStep(step);
  const dag = document.getElementById("dag");
  if (dag) panZoom(dag);
  const compare = document.getElementById("compare-form");
  if (compare) comparePicker(compare);
});
