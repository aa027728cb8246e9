// convprop's interactive page: draws the numbers convprop computed (embedded as JSON) for the
// chosen setting, and highlights which of them enter each sum. The script computes no value
// of y, dx, dW or db: it only places the embedded numbers and finds, from the index equations
// of docs/derivations.md, which cells take part.
"use strict";
(function () {
  const DATA = JSON.parse(document.getElementById("convprop-data").textContent);
  const NAMES = ["size", "kernel", "stride", "padding", "dilation", "channels"];
  const DEFAULTS = { size: 5, kernel: 3, stride: 1, padding: 1, dilation: 1, channels: 1 };
  const TABS = ["forward", "weights", "input", "pool"];
  const state = { tab: "forward", step: 0, timer: null, dw: [0, 0, 0], dx: [0, -1, -1], pool: [0, 0, 0] };

  const byId = (id) => document.getElementById(id);
  const el = (tag, attrs, text) => {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, value);
    if (text !== undefined) node.textContent = text;
    return node;
  };
  const show = (v) => (Number.isInteger(v) ? String(v) : String(Math.round(v * 1000) / 1000));
  const term = (v) => (v < 0 ? `(${show(v)})` : show(v));
  const range = (n) => Array.from({ length: n }, (_, i) => i);

  // -- the setting and its geometry (S1, docs/derivations.md §2) -------------------------------
  function setting() {
    const s = {};
    for (const name of NAMES) s[name] = Number(byId("control-" + name).value);
    return s;
  }
  const keyOf = (s) => NAMES.map((name) => s[name]).join("-");
  function geometry(s) {
    const Hp = s.size + 2 * s.padding;
    const Rd = s.dilation * (s.kernel - 1) + 1;
    const P = Math.floor((Hp - Rd) / s.stride) + 1;
    return {
      H: s.size, R: s.kernel, C: s.channels, stride: s.stride, pad: s.padding, dil: s.dilation,
      Hp, Rd, P, rem: (Hp - Rd) % s.stride, up: s.stride * (P - 1) + 1,
      Pp: Math.floor((s.size - s.kernel) / s.stride) + 1,
    };
  }
  const padded = (plane, pad) => {
    const n = plane.length + 2 * pad;
    return range(n).map((i) => range(n).map((j) => {
      const h = i - pad, w = j - pad;
      return h >= 0 && w >= 0 && h < plane.length && w < plane.length ? plane[h][w] : 0;
    }));
  };

  // -- grids ------------------------------------------------------------------------------------
  // A table of numbers: data-array / data-channel name it, each cell carries data-row,
  // data-col and data-value (the number as convprop computed it), and its highlight classes.
  function grid(o) {
    const figure = el("figure");
    const caption = el("figcaption");
    caption.innerHTML = o.caption;
    figure.appendChild(caption);
    const table = el("table", {
      class: "grid" + (o.select ? " clickable" : ""), "data-array": o.array,
      "data-channel": String(o.channel === undefined ? 0 : o.channel), "aria-label": o.label || o.array,
    });
    if (o.select) table.setAttribute("role", "grid");
    const head = el("tr");
    head.appendChild(el("th"));
    o.values[0].forEach((_, j) => head.appendChild(el("th", { scope: "col" }, String(j))));
    table.appendChild(head);
    let focusable = null;
    o.values.forEach((row, i) => {
      const tr = el("tr");
      tr.appendChild(el("th", { scope: "row" }, String(i)));
      row.forEach((value, j) => {
        const td = el("td", { "data-row": String(i), "data-col": String(j), "data-value": String(value) }, show(value));
        const extra = o.cell ? o.cell(i, j) : {};
        if (extra.classes && extra.classes.length) td.className = extra.classes.join(" ");
        for (const [name, v] of Object.entries(extra.attrs || {})) td.setAttribute(name, v);
        if (extra.title) td.title = extra.title;
        if (o.select) {
          td.tabIndex = -1;
          if (extra.classes && extra.classes.includes("selected")) focusable = td;
        }
        tr.appendChild(td);
      });
      table.appendChild(tr);
    });
    if (o.select) {
      (focusable || table.querySelector("td")).tabIndex = 0;
      navigable(table, o.select);
    }
    figure.appendChild(table);
    return figure;
  }

  function navigable(table, select) {
    const moves = { ArrowUp: [-1, 0], ArrowDown: [1, 0], ArrowLeft: [0, -1], ArrowRight: [0, 1] };
    const channel = table.dataset.channel, array = table.dataset.array;
    const pick = (i, j) => {
      select(i, j);
      const again = document.querySelector(`table[data-array="${array}"][data-channel="${channel}"] td[data-row="${i}"][data-col="${j}"]`);
      if (again) again.focus();
    };
    table.addEventListener("click", (event) => {
      const td = event.target.closest("td[data-row]");
      if (td) pick(Number(td.dataset.row), Number(td.dataset.col));
    });
    table.addEventListener("keydown", (event) => {
      const td = event.target.closest("td[data-row]");
      if (!td) return;
      const i = Number(td.dataset.row), j = Number(td.dataset.col);
      if (event.key in moves) {
        const [di, dj] = moves[event.key];
        if (table.querySelector(`td[data-row="${i + di}"][data-col="${j + dj}"]`)) {
          event.preventDefault();
          pick(i + di, j + dj);
        }
      } else if (event.key === "Enter" || event.key === " ") {
        event.preventDefault();
        pick(i, j);
      }
    });
  }

  const cap = (name, detail, shape) => `<strong>${name}</strong> ${detail || ""} <span class="shape">${shape || ""}</span>`;
  const dims = (values) => `${values.length}×${values[0].length}`;

  // -- forward (F1) -------------------------------------------------------------------------------
  function renderForward(d, g) {
    const box = byId("forward-grids");
    box.replaceChildren();
    const count = g.P * g.P;
    state.step = ((state.step % count) + count) % count;
    const p = Math.floor(state.step / g.P), q = state.step % g.P;
    const terms = [];
    for (let c = 0; c < g.C; c++) {
      const xPad = padded(d.x[c], g.pad);
      const taps = new Map();
      for (let r = 0; r < g.R; r++) for (let s = 0; s < g.R; s++) taps.set(`${p * g.stride + r * g.dil},${q * g.stride + s * g.dil}`, [r, s]);
      box.appendChild(grid({
        array: "x_pad", channel: c, values: xPad,
        caption: cap(`x_pad[${c}]`, g.pad ? `(x with ${g.pad} ring${g.pad > 1 ? "s" : ""} of zeros)` : "(x, no padding)", dims(xPad)),
        cell: (i, j) => {
          const classes = [], inPad = i < g.pad || j < g.pad || i >= g.pad + g.H || j >= g.pad + g.H;
          if (inPad) classes.push("pad");
          const tap = taps.get(`${i},${j}`);
          if (tap) classes.push("hl-window");
          return { classes, attrs: { "data-pad": String(inPad) }, title: tap ? `read by tap w[${c}, ${tap[0]}, ${tap[1]}]` : undefined };
        },
      }));
      box.appendChild(grid({
        array: "w", channel: c, values: d.w[c], caption: cap(`w[${c}]`, "", dims(d.w[c])),
        cell: () => ({ classes: ["hl-tap"] }),
      }));
      for (let r = 0; r < g.R; r++) for (let s = 0; s < g.R; s++) {
        terms.push(`${term(d.w[c][r][s])}·${term(xPad[p * g.stride + r * g.dil][q * g.stride + s * g.dil])}`);
      }
    }
    box.appendChild(grid({
      array: "y", values: d.y, caption: cap("y", `= b + Σ w·x_pad, b = ${show(d.b)}`, dims(d.y)),
      cell: (i, j) => ({ classes: i === p && j === q ? ["selected"] : [] }),
      select: (i, j) => { state.step = i * g.P + j; render(); },
    }));
    byId("step-position").textContent = `output (p, q) = (${p}, ${q}), ${state.step + 1} of ${count}`;
    byId("forward-derivation").textContent =
      `y[${p}, ${q}] = b + Σ w[c, r, s]·x_pad[c, ${p}·${g.stride} + r·${g.dil}, ${q}·${g.stride} + s·${g.dil}] = ` +
      `${show(d.b)} + ${terms.join(" + ")} = ${show(d.y[p][q])}`;
  }

  // -- dW (B2) and db (B1) --------------------------------------------------------------------------
  function renderWeights(d, g) {
    const box = byId("weights-grids");
    box.replaceChildren();
    const [c0, r0, s0] = state.dw = [Math.min(state.dw[0], g.C - 1), Math.min(state.dw[1], g.R - 1), Math.min(state.dw[2], g.R - 1)];
    const read = new Set();
    const terms = [];
    const xPad = padded(d.x[c0], g.pad);
    for (let p = 0; p < g.P; p++) for (let q = 0; q < g.P; q++) {
      const i = p * g.stride + r0 * g.dil, j = q * g.stride + s0 * g.dil;
      read.add(`${i},${j}`);
      terms.push(`${term(d.dy[p][q])}·${term(xPad[i][j])}`);
    }
    for (let c = 0; c < g.C; c++) {
      box.appendChild(grid({
        array: "x_pad", channel: c, values: padded(d.x[c], g.pad), caption: cap(`x_pad[${c}]`, "", `${g.Hp}×${g.Hp}`),
        cell: (i, j) => {
          const classes = [], inPad = i < g.pad || j < g.pad || i >= g.pad + g.H || j >= g.pad + g.H;
          if (inPad) classes.push("pad");
          if (c === c0 && read.has(`${i},${j}`)) classes.push("hl-window");
          return { classes, attrs: { "data-pad": String(inPad) } };
        },
      }));
    }
    box.appendChild(grid({
      array: "dy", values: d.dy, caption: cap("dy", "(upstream)", dims(d.dy)),
      cell: () => ({ classes: ["hl-dy"] }),
    }));
    for (let c = 0; c < g.C; c++) {
      box.appendChild(grid({
        array: "dw", channel: c, values: d.dw[c], caption: cap(`dW[${c}]`, "", dims(d.dw[c])),
        cell: (i, j) => ({ classes: c === c0 && i === r0 && j === s0 ? ["selected"] : [] }),
        select: (i, j) => { state.dw = [c, i, j]; render(); },
      }));
    }
    byId("weights-derivation").textContent =
      `dW[${c0}, ${r0}, ${s0}] = Σ dy[p, q]·x_pad[${c0}, p·${g.stride} + ${r0}·${g.dil}, q·${g.stride} + ${s0}·${g.dil}] = ` +
      `${terms.join(" + ")} = ${show(d.dw[c0][r0][s0])}`;
    box.appendChild(grid({ array: "db", values: [d.db], caption: cap("db", "(B1)", "1") }));
    byId("bias-derivation").textContent =
      `db = Σ dy[p, q] = ${d.dy.flat().map(term).join(" + ")} = ${show(d.db[0])}`;
  }

  // -- dx (B3) ------------------------------------------------------------------------------------------
  // The taps (p, r) along one axis whose product reaches padded row i: p·stride + r·dil = i.
  function pairs(i, g) {
    const found = [];
    for (let r = 0; r < g.R; r++) {
      const u = i - r * g.dil;
      if (u >= 0 && u % g.stride === 0 && u / g.stride < g.P) found.push([u / g.stride, r]);
    }
    return found;
  }

  function renderInput(d, g) {
    const box = byId("input-grids");
    box.replaceChildren();
    let [c0, i0, j0] = state.dx;
    if (c0 >= g.C) c0 = 0;
    if (i0 < 0 || i0 >= g.Hp) i0 = g.pad;
    if (j0 < 0 || j0 >= g.Hp) j0 = g.pad;
    state.dx = [c0, i0, j0];
    const rows = pairs(i0, g), cols = pairs(j0, g);
    const usedDy = new Set(), usedTap = new Set(), terms = [];
    for (const [p, r] of rows) for (const [q, s] of cols) {
      usedDy.add(`${p},${q}`);
      usedTap.add(`${r},${s}`);
      terms.push(`dy[${p}, ${q}]·w[${c0}, ${r}, ${s}] = ${term(d.dy[p][q])}·${term(d.w[c0][r][s])}`);
    }
    box.appendChild(grid({
      array: "dy", values: d.dy, caption: cap("dy", "", dims(d.dy)),
      cell: (p, q) => ({ classes: usedDy.has(`${p},${q}`) ? ["hl-dy"] : [] }),
    }));
    // dy_full: dy_up (dy with stride − 1 zeros between entries) inside Rd − 1 rows and columns
    // of zeros, and a zero tail that covers the remainder rows: Hp + Rd − 1 rows in all.
    const n = g.Hp + g.Rd - 1, edge = g.Rd - 1;
    const kind = (u) => {
      const v = u - edge;
      if (v < 0 || v >= g.up) return "pad";
      return v % g.stride === 0 ? "entry" : "inserted";
    };
    const full = range(n).map((u) => range(n).map((v) => (kind(u) === "entry" && kind(v) === "entry" ? d.dy[(u - edge) / g.stride][(v - edge) / g.stride] : 0)));
    const windowCells = new Set();
    for (let r = 0; r < g.R; r++) for (let s = 0; s < g.R; s++) windowCells.add(`${i0 + r * g.dil},${j0 + s * g.dil}`);
    box.appendChild(grid({
      array: "dy_full", values: full,
      caption: cap("dy_full", g.stride > 1 ? `= dy zero-upsampled by ${g.stride} (dy_up), padded by dil·(R − 1) = ${edge}` : `= dy padded by dil·(R − 1) = ${edge}`, `${n}×${n}`),
      cell: (u, v) => {
        const ku = kind(u), kv = kind(v);
        const type = ku === "pad" || kv === "pad" ? "pad" : ku === "entry" && kv === "entry" ? "entry" : "inserted";
        const classes = type === "entry" ? [] : [type];
        if (windowCells.has(`${u},${v}`)) classes.push(type === "entry" ? "hl-dy" : "hl-window");
        return { classes, attrs: { "data-kind": type } };
      },
    }));
    for (let c = 0; c < g.C; c++) {
      const rotated = range(g.R).map((r) => range(g.R).map((s) => d.w[c][g.R - 1 - r][g.R - 1 - s]));
      box.appendChild(grid({
        array: "w_rot", channel: c, values: rotated, caption: cap(`rot180(w[${c}])`, "", dims(rotated)),
        cell: (r, s) => ({ classes: c === c0 && usedTap.has(`${g.R - 1 - r},${g.R - 1 - s}`) ? ["hl-tap"] : [] }),
      }));
    }
    for (let c = 0; c < g.C; c++) {
      box.appendChild(grid({
        array: "dx_pad", channel: c, values: d.dx_pad[c],
        caption: cap(`dx_pad[${c}]`, g.pad ? "(hatched border: cropped; the rest is dx)" : "(= dx, no padding)", dims(d.dx_pad[c])),
        cell: (i, j) => {
          const cropped = i < g.pad || j < g.pad || i >= g.pad + g.H || j >= g.pad + g.H;
          const classes = cropped ? ["pad", "cropped"] : [];
          if (c === c0 && i === i0 && j === j0) classes.push("selected");
          return { classes, attrs: { "data-cropped": String(cropped) } };
        },
        select: (i, j) => { state.dx = [c, i, j]; render(); },
      }));
    }
    const cropped = i0 < g.pad || j0 < g.pad || i0 >= g.pad + g.H || j0 >= g.pad + g.H;
    const where = cropped ? " (a padding zero's gradient: cropped, not part of dx)" : ` = dx[${c0}, ${i0 - g.pad}, ${j0 - g.pad}]`;
    byId("input-derivation").textContent = terms.length
      ? `dx_pad[${c0}, ${i0}, ${j0}]${where} = ${terms.join(" + ")} = ${show(d.dx_pad[c0][i0][j0])}`
      : `dx_pad[${c0}, ${i0}, ${j0}]${where} = 0: no window reads this pixel (a gap between windows, or a remainder row of S1, §2).`;
  }

  // -- pooling (MP1–MP3, AP1–AP3) -------------------------------------------------------------------
  function renderPool(d, g) {
    const box = byId("pool-grids");
    box.replaceChildren();
    const pool = d.pool;
    let [c0, p0, q0] = state.pool;
    if (c0 >= g.C || p0 >= g.Pp || q0 >= g.Pp) [c0, p0, q0] = [0, 0, 0];
    state.pool = [c0, p0, q0];
    const t = pool.argmax[c0][p0][q0], r0 = Math.floor(t / g.R), s0 = t % g.R;
    const winner = [p0 * g.stride + r0, q0 * g.stride + s0];
    const inWindow = (c, i, j) => c === c0 && i >= p0 * g.stride && i < p0 * g.stride + g.R && j >= q0 * g.stride && j < q0 * g.stride + g.R;
    const max = pool.y_max[c0][p0][q0];
    const ties = [];
    for (let r = 0; r < g.R; r++) for (let s = 0; s < g.R; s++) {
      const i = p0 * g.stride + r, j = q0 * g.stride + s;
      if (d.x[c0][i][j] === max && !(i === winner[0] && j === winner[1])) ties.push([i, j]);
    }
    const isTie = (c, i, j) => c === c0 && ties.some(([a, b]) => a === i && b === j);
    const isWinner = (c, i, j) => c === c0 && i === winner[0] && j === winner[1];
    const chosen = (c, i, j) => (c === c0 && i === p0 && j === q0 ? ["selected"] : []);
    const choose = (c) => (i, j) => { state.pool = [c, i, j]; render(); };
    for (let c = 0; c < g.C; c++) {
      const row = el("div", { class: "pool-row" });
      row.appendChild(el("h3", {}, `channel ${c}`));
      row.appendChild(grid({
        array: "x", channel: c, values: d.x[c], caption: cap(`x[${c}]`, "", dims(d.x[c])),
        cell: (i, j) => ({ classes: isWinner(c, i, j) ? ["hl-target"] : isTie(c, i, j) ? ["tie", "hl-window"] : inWindow(c, i, j) ? ["hl-window"] : [] }),
      }));
      row.appendChild(grid({
        array: "pool_dy", channel: c, values: pool.dy[c], caption: cap("dy", "(upstream of the pooling)", dims(pool.dy[c])),
        cell: (i, j) => ({ classes: c === c0 && i === p0 && j === q0 ? ["hl-dy"] : [] }),
      }));
      row.appendChild(grid({
        array: "y_max", channel: c, values: pool.y_max[c], caption: cap("max pool", "(MP1)", dims(pool.y_max[c])),
        cell: (i, j) => ({ classes: chosen(c, i, j) }), select: choose(c),
      }));
      row.appendChild(grid({
        array: "dx_max", channel: c, values: pool.dx_max[c], caption: cap("dx of max", "(MP3: routed)", dims(pool.dx_max[c])),
        cell: (i, j) => ({ classes: isWinner(c, i, j) ? ["hl-target"] : [] }),
      }));
      row.appendChild(grid({
        array: "y_avg", channel: c, values: pool.y_avg[c], caption: cap("average pool", "(AP2)", dims(pool.y_avg[c])),
        cell: (i, j) => ({ classes: chosen(c, i, j) }), select: choose(c),
      }));
      row.appendChild(grid({
        array: "dx_avg", channel: c, values: pool.dx_avg[c], caption: cap("dx of average", "(AP3: spread)", dims(pool.dx_avg[c])),
        cell: (i, j) => ({ classes: inWindow(c, i, j) ? ["hl-window"] : [] }),
      }));
      box.appendChild(row);
    }
    const dy = pool.dy[c0][p0][q0], cells = g.R * g.R;
    const tieText = ties.length ? `; it ties with ${ties.map(([i, j]) => `x[${c0}, ${i}, ${j}]`).join(", ")}, and the first in row-major order wins (MP2)` : "";
    byId("pool-derivation").textContent =
      `Window (${p0}, ${q0}) of channel ${c0}: its maximum ${show(max)} is first reached at x[${c0}, ${winner[0]}, ${winner[1]}] ` +
      `(tap t = ${t})${tieText}, so max pooling sends dy[${p0}, ${q0}] = ${show(dy)} there (MP3); dx of max sums what each cell receives. ` +
      `Average pooling sends dy/${cells} = ${show(dy)}/${cells} to each of the ${cells} cells of the window (AP3); overlapping windows add.`;
  }

  // -- the page -----------------------------------------------------------------------------------------
  function describe(s, g) {
    const text = `x (1, ${g.C}, ${g.H}, ${g.H}), w (1, ${g.C}, ${g.R}, ${g.R}), b (1,); ` +
      `padded input ${g.Hp}×${g.Hp}, dilated kernel extent Rd = ${g.dil}·(${g.R} − 1) + 1 = ${g.Rd}; `;
    if (g.Hp < g.Rd) return text + "no output.";
    return text + `P = Q = ⌊(${g.H} + 2·${g.pad} − ${g.Rd}) / ${g.stride}⌋ + 1 = ${g.P} (S1)` +
      (g.rem ? `, remainder ${g.rem}: the last ${g.rem} row(s) and column(s) of x_pad are read by no window` : "");
  }

  function render() {
    const s = setting(), g = geometry(s), d = DATA.settings[keyOf(s)];
    byId("shapes").textContent = describe(s, g);
    const invalid = byId("invalid");
    invalid.hidden = Boolean(d);
    invalid.textContent = d ? "" :
      `This setting has no output: the dilated kernel covers Rd = ${g.Rd} rows, more than the ${g.Hp} rows of the padded input (S1, docs/derivations.md §2). ` +
      "Choose a larger input or padding, or a smaller kernel or dilation.";
    for (const tab of TABS) {
      byId("panel-" + tab).hidden = !d || state.tab !== tab;
      const button = byId("tab-" + tab);
      button.setAttribute("aria-selected", String(state.tab === tab));
      button.tabIndex = state.tab === tab ? 0 : -1;
    }
    if (!d) return;
    renderForward(d, g);
    renderWeights(d, g);
    renderInput(d, g);
    renderPool(d, g);
  }

  function selectTab(tab, focus) {
    state.tab = tab;
    render();
    if (focus) byId("tab-" + tab).focus();
  }

  function play() {
    const button = byId("step-play");
    if (state.timer) {
      clearInterval(state.timer);
      state.timer = null;
    } else {
      state.timer = setInterval(() => { state.step += 1; render(); }, 900);
    }
    button.textContent = state.timer ? "❚❚ Pause" : "▶ Play";
    button.setAttribute("aria-pressed", String(Boolean(state.timer)));
  }

  function setUp() {
    for (const name of NAMES) {
      const select = byId("control-" + name);
      for (const value of DATA.ranges[name]) select.appendChild(el("option", { value: String(value) }, String(value)));
      select.value = String(DEFAULTS[name]);
      select.addEventListener("change", render);
    }
    const tabs = byId("tabs");
    tabs.addEventListener("click", (event) => {
      const button = event.target.closest("[role=tab]");
      if (button) selectTab(button.dataset.tab, true);
    });
    tabs.addEventListener("keydown", (event) => {
      const index = TABS.indexOf(state.tab);
      const next = { ArrowRight: index + 1, ArrowLeft: index - 1, Home: 0, End: TABS.length - 1 }[event.key];
      if (next === undefined) return;
      event.preventDefault();
      selectTab(TABS[(next + TABS.length) % TABS.length], true);
    });
    byId("step-previous").addEventListener("click", () => { state.step -= 1; render(); });
    byId("step-next").addEventListener("click", () => { state.step += 1; render(); });
    byId("step-play").addEventListener("click", play);
    render();
  }

  // read by the tests, and handy in the browser's console
  window.convpropPage = {
    data: DATA,
    state,
    setting,
    current: () => DATA.settings[keyOf(setting())] || null,
  };
  setUp();
})();
