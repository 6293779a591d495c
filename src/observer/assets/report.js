// Draws a checked history (the JSON in #history-data) as one timeline per key: a row per
// client, each operation a bar from call to return, numbered in the linearization found
// with its linearization point marked; for a key without one, the operations that show
// why are highlighted. Keys, values and results go on the page as text only.
"use strict";

(function () {
  const data = JSON.parse(document.getElementById("history-data").textContent);
  const root = document.getElementById("report");
  const SVG = "http://www.w3.org/2000/svg";
  const MAX_KEYS = 200;

  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") e.className = v;
      else if (k === "text") e.textContent = v;
      else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v);
    }
    for (const c of children) if (c) e.append(c);
    return e;
  }
  function svg(tag, attrs, text) {
    const e = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    return e;
  }
  const q = (s) => JSON.stringify(s);

  // "write a", "read → a", "write-hash x → prev", "write a ⟂ timeout".
  function describe(op) {
    const arg = op.kind === "read" ? "" : ` ${q(op.value)}`;
    const out = op.result !== null ? ` → ${q(op.result)}` : ` ⟂ ${op.error || "no answer"}`;
    return `${op.kind}${arg}${out}`;
  }
  function shortText(op) {
    const k = { read: "r", write: "w", "write-hash": "wh" }[op.kind] || op.kind;
    const arg = op.kind === "read" ? "" : ` ${op.value}`;
    const out = op.result === null ? " ?" : op.result === "" ? ' → ""' : ` → ${op.result}`;
    return `${k}${arg}${out}`;
  }

  function timeline(key, ops, outcome) {
    const clients = [...new Set(ops.map((o) => o.client))].sort((a, b) => a - b);
    const row = new Map(clients.map((c, i) => [c, i]));
    const t0 = Math.min(...ops.map((o) => o.call));
    const ends = ops.map((o) => (o.return !== null ? o.return : o.call));
    let t1 = Math.max(...ends, ...ops.map((o) => o.call));
    const spanT = Math.max(1, t1 - t0);
    t1 = t0 + spanT * 1.06; // room for unanswered operations to run off
    const LEFT = 90, ROW = 34, TOP = 26;
    const avail = (root.clientWidth || 1200) - 110;
    const width = Math.min(8000, Math.max(avail, 960, ops.length * 46));
    const height = TOP + clients.length * ROW + 14;
    const x = (t) => LEFT + ((t - t0) / (t1 - t0)) * (width - LEFT - 16);
    const s = svg("svg", { width, height, viewBox: `0 0 ${width} ${height}`, class: "timeline" });
    // time axis: a tick per tenth of the span
    for (let i = 0; i <= 10; i++) {
      const t = t0 + (spanT * i) / 10;
      s.append(svg("line", { x1: x(t), x2: x(t), y1: TOP - 6, y2: height - 10, class: "tick" }));
      const dt = t - t0;
      const label = spanT >= 20000 ? `${(dt / 1000).toFixed(spanT >= 200000 ? 0 : 1)} ms` : `${Math.round(dt)} µs`;
      s.append(svg("text", { x: x(t), y: 14, class: "tick-label" }, label));
    }
    clients.forEach((c, i) => {
      s.append(svg("text", { x: 8, y: TOP + i * ROW + 21, class: "client" }, `client ${c}`));
      s.append(svg("line", { x1: LEFT, x2: width - 10, y1: TOP + i * ROW + ROW - 2, y2: TOP + i * ROW + ROW - 2, class: "lane" }));
    });
    // bars
    const point = new Map();
    const ordered = ops.filter((o) => o.order !== null && !o.role).sort((a, b) => a.order - b.order);
    let last = -Infinity;
    for (const o of ordered) {
      // The earliest instant the order allows: after its call and the previous point.
      last = Math.max(o.call, last);
      point.set(o, last);
    }
    for (const o of ops) {
      const y = TOP + row.get(o.client) * ROW + 4;
      const xa = x(o.call);
      const xb = o.return !== null ? x(o.return) : width - 12;
      const cls = ["bar", o.kind.replace("-", "_")];
      if (o.return === null) cls.push("unanswered");
      if (o.role) cls.push(`role-${o.role}`);
      if (o.order === null && outcome === "linearizable") cls.push("unplaced");
      const g = svg("g", { class: "op-bar", "data-key": key });
      g.append(svg("title", {}, `client ${o.client}: ${describe(o)}\ncall ${o.call}, return ${o.return === null ? "none" : o.return}${o.order !== null ? `\nlinearized #${o.order}` : ""}${o.role ? `\n${o.role}` : ""}`));
      g.append(svg("rect", { x: xa, y, width: Math.max(3, xb - xa), height: ROW - 10, rx: 4, class: cls.join(" ") }));
      // The label fits its bar (about 6.7 px a character); the tooltip and the table have
      // the rest.
      const full = (o.order !== null ? `${o.order}. ` : "") + shortText(o);
      const room = Math.floor((xb - xa - 8) / 6.7);
      const label = full.length <= room ? full : room >= 4 ? full.slice(0, room - 1) + "…" : (o.order !== null ? String(o.order) : "");
      if (label) g.append(svg("text", { x: xa + 5, y: y + 15, class: "bar-label" }, label));
      s.append(g);
    }
    // linearization points, joined in order
    if (ordered.length) {
      // On the bars' lower edges, clear of their labels.
      const pts = ordered.map((o) => [x(point.get(o)), TOP + row.get(o.client) * ROW + ROW - 6]);
      s.append(svg("polyline", { points: pts.map((p) => p.join(",")).join(" "), class: "lin-path" }));
      for (const [px, py] of pts) {
        s.append(svg("path", { d: `M${px} ${py - 5} L${px + 5} ${py} L${px} ${py + 5} L${px - 5} ${py} Z`, class: "lin-point" }));
      }
    }
    return el("div", { class: "scroll" }, s);
  }

  function opTable(ops, ordered) {
    const rows = (ordered ? ops.slice().sort((a, b) => (a.order ?? 1e18) - (b.order ?? 1e18) || a.call - b.call) : ops.slice().sort((a, b) => a.call - b.call));
    const body = el("tbody");
    for (const o of rows) {
      body.append(el("tr", { class: `op${o.role ? " role-" + o.role : ""}` },
        el("td", { class: "num", text: o.order !== null ? String(o.order) : "–" }),
        el("td", { class: "num", text: String(o.client) }),
        el("td", { text: o.kind }),
        el("td", { class: "val", text: o.kind === "read" ? "" : o.value }),
        el("td", { class: "val", text: o.result !== null ? o.result : `(${o.error || "no answer"})` }),
        el("td", { class: "num", text: String(o.call) }),
        el("td", { class: "num", text: o.return !== null ? String(o.return) : "–" }),
        el("td", { text: o.role || "" })));
    }
    return el("table", { class: "ops" },
      el("thead", {}, el("tr", {}, ...["#", "client", "op", "value", "result", "call (µs)", "return (µs)", ""].map((h) => el("th", { text: h })))),
      body);
  }

  function keySection(k) {
    const failing = k.outcome === "not linearizable";
    const excerpt = k.ops.filter((o) => o.role);
    const head = el("div", { class: "key-head" },
      el("h2", {}, el("span", { class: "k", text: "key " }), el("span", { class: "key-name", text: k.key })),
      el("span", { class: `verdict ${failing ? "bad" : k.outcome === "unknown" ? "warn" : "good"}`, text: k.outcome }),
      el("span", { class: "muted", text: `${k.total} operation${k.total === 1 ? "" : "s"}${k.total > k.ops.length ? `, first ${k.ops.length} drawn` : ""}` }));
    const section = el("section", { class: `key${failing ? " failing" : ""}`, "data-key": k.key }, head);
    const body = el("div", {});
    const draw = (ops) => body.replaceChildren(timeline(k.key, ops, k.outcome), opTable(ops, !failing));
    if (failing) {
      const has = (role) => excerpt.some((o) => o.role === role);
      section.append(el("p", { class: "why" },
        el("span", { text: `The longest linearizable prefix has ${k.prefix_len} operation${k.prefix_len === 1 ? "" : "s"}, leaving the value ` }),
        el("code", { text: q(k.value_after_prefix) }),
        el("span", { text: ". The " }), el("b", { class: "stuck-word", text: "red" }),
        el("span", { text: " operation returned before it could be placed after it" }),
        ...(has("pending") ? [el("span", { text: "; the " }), el("b", { class: "pending-word", text: "amber" }),
          el("span", { text: " ones were the other candidates" })] : []),
        ...(has("prefix") ? [el("span", { text: "; the grey ones, numbered in their order, end the prefix" })] : []),
        el("span", { text: "." })));
      const all = el("input", { type: "checkbox" });
      all.addEventListener("change", () => draw(all.checked ? k.ops : excerpt));
      section.append(el("label", { class: "toggle" }, all, el("span", { text: ` show all ${k.ops.length} operations of this key` })));
      draw(excerpt.length ? excerpt : k.ops);
    } else {
      if (k.outcome === "linearizable") {
        section.append(el("p", { class: "why muted", text: "Numbers give the linearization found; diamonds mark the earliest instant each operation can take effect in it." }));
      }
      draw(k.ops);
    }
    section.append(body);
    return section;
  }

  const verdictClass = data.verdict === "linearizable" ? "good" : data.verdict === "unknown" ? "warn" : "bad";
  const keys = data.keys.slice().sort((a, b) => (a.outcome === "linearizable") - (b.outcome === "linearizable"));
  root.replaceChildren(
    el("header", { class: "top" },
      el("h1", {}, el("span", { text: "paxoskv history " }), el("span", { class: "file", text: data.file })),
      el("span", { class: `verdict big ${verdictClass}`, id: "verdict", text: data.verdict }),
      el("span", { class: "muted", text: `${data.keys.length} key${data.keys.length === 1 ? "" : "s"}, ${data.keys.reduce((n, k) => n + k.total, 0)} operations` })),
    ...keys.slice(0, MAX_KEYS).map(keySection),
    ...(keys.length > MAX_KEYS ? [el("p", { class: "muted", text: `… and ${keys.length - MAX_KEYS} more keys (not drawn).` })] : []));
})();
