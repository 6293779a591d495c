// The observer page: follows the server's live feed (server-sent events) and draws the
// cluster. Every string from the cluster goes on the page as text (textContent), never
// as markup. The control token comes from the URL fragment the command line printed
// (#token=...): browsers never send a fragment to the server; the page keeps it in
// sessionStorage and removes it from the address bar.
"use strict";

(function () {
  const TOKEN_KEY = "paxoskv-observer-token";
  const SERIES = [
    { key: "decisions", label: "decisions", color: "#7c3aed" },
    { key: "read", label: "read", color: "#0284c7" },
    { key: "write", label: "write", color: "#16a34a" },
    { key: "write_hash", label: "write-hash", color: "#ea580c" },
  ];

  // ------------------------------------------------------------------ the token
  function takeToken() {
    const m = /(?:^#|&)token=([0-9a-fA-F]{64})(?:&|$)/.exec(location.hash);
    if (m) {
      sessionStorage.setItem(TOKEN_KEY, m[1]);
      history.replaceState(null, "", location.pathname + location.search);
    }
    return sessionStorage.getItem(TOKEN_KEY);
  }
  const token = takeToken();

  // ------------------------------------------------------------------ DOM helpers
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
  function setText(e, text) {
    const t = String(text);
    if (e.textContent !== t) e.textContent = t;
  }
  function fmt(n) {
    if (n === null || n === undefined) return "–";
    if (typeof n === "number" && !Number.isInteger(n)) return n >= 100 ? n.toFixed(0) : n.toFixed(1);
    return Number(n).toLocaleString("en-US");
  }
  function stat(label) {
    const value = el("span", { class: "v" });
    const box = el("div", { class: "stat" }, el("span", { class: "k", text: label }), value);
    return { box, value };
  }

  // ------------------------------------------------------------------ controls
  let toastTimer = null;
  function toast(text, bad) {
    const t = document.getElementById("toast");
    t.textContent = text;
    t.className = bad ? "toast bad" : "toast";
    t.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { t.hidden = true; }, 3500);
  }

  async function control(body) {
    if (!token) {
      toast("read-only: open the address the command line printed (it carries the token)", true);
      return;
    }
    try {
      const r = await fetch("/api/control", {
        method: "POST",
        headers: { "content-type": "application/json", "x-paxoskv-token": token },
        body: JSON.stringify(body),
      });
      const answer = await r.json().catch(() => ({}));
      if (r.ok) toast(`${body.action} ${body.process || ""} on ${body.node}: done`);
      else toast(`${body.action} on ${body.node}: ${answer.error || r.status}`, true);
    } catch (e) {
      toast(`${body.action} on ${body.node}: ${e}`, true);
    }
  }

  // ------------------------------------------------------------------ node cards
  const cards = new Map(); // node name -> card parts

  function treeRow(node, shape, depth, parts) {
    const pid = el("span", { class: "pid" });
    const status = el("span", { class: "status" });
    const mailbox = el("span", { class: "mailbox" });
    const restarts = el("span", { class: "restarts" });
    // The root has no supervisor to bring it back: no kill button for it.
    const kill = depth === 0 ? el("span", { class: "muted", title: "nothing restarts the root supervisor" }) : el("button", {
      class: "kill", "data-action": "kill", title: `kill ${shape.name}; its supervisor restarts it`,
      text: "kill",
      onclick: () => control({ node, action: "kill", process: shape.name }),
    });
    const name = el("span", { class: "pname", text: shape.name });
    const strategy = shape.strategy ? el("span", { class: "strategy", text: shape.strategy }) : null;
    const row = el("div", { class: `proc ${shape.kind}`, "data-process": shape.name, style: `--depth:${depth}` },
      el("span", { class: "pcell namecell" }, el("span", { class: "glyph", text: shape.kind === "supervisor" ? "▾" : "•" }), name, strategy),
      el("span", { class: "pcell" }, pid),
      el("span", { class: "pcell" }, status),
      el("span", { class: "pcell num" }, mailbox),
      el("span", { class: "pcell num" }, restarts),
      el("span", { class: "pcell" }, kill));
    parts.rows.set(shape.name, { row, pid, status, mailbox, restarts, kill });
    parts.tree.append(row);
    for (const c of shape.children) treeRow(node, c, depth + 1, parts);
  }

  function makeCard(n, all) {
    const name = n.name;
    const parts = { rows: new Map(), allowBoxes: new Map() };
    const badges = el("div", { class: "badges" });
    const peers = el("div", { class: "peers" });
    const stats = {};
    const grid = el("div", { class: "stats" });
    for (const [k, label] of [
      ["max", "paxos max"], ["min", "min"], ["held", "held"], ["lost", "lost props"],
      ["keys", "keys"], ["applied", "applied"], ["procs", "processes"], ["dropped", "dropped"],
      ["read", "reads"], ["write", "writes"], ["write_hash", "write-hashes"], ["latency", "mean latency"],
    ]) {
      stats[k] = stat(label);
      grid.append(stats[k].box);
    }
    const deafBtn = el("button", { "data-action": "deaf", text: "deaf", onclick: () => control({ node: name, action: parts.deaf ? "listen" : "deaf" }) });
    const unrelBtn = el("button", { "data-action": "unreliable", text: "unreliable", onclick: () => control(parts.unreliable ? { node: name, action: "reliable" } : { node: name, action: "unreliable", probability: Number(prob.value) }) });
    const prob = el("input", { type: "number", min: "0", max: "1", step: "0.05", value: "0.2", class: "prob", title: "drop probability" });
    const allowList = el("span", { class: "allow-list" });
    for (const other of all) {
      const box = el("input", { type: "checkbox", value: other });
      box.checked = true;
      parts.allowBoxes.set(other, box);
      allowList.append(el("label", { class: "allow-item" }, box, el("span", { text: other.split("@")[0] })));
    }
    const allowBtn = el("button", {
      "data-action": "allow",
      onclick: () => control({ node: name, action: "allow", allow: [...parts.allowBoxes].filter(([, b]) => b.checked).map(([n]) => n) }),
      text: "cut to these",
    });
    const allowAllBtn = el("button", { "data-action": "allow-all", text: "allow all", onclick: () => control({ node: name, action: "allow-all" }) });
    const controls = el("div", { class: "controls" },
      el("div", { class: "ctl-row" }, deafBtn, unrelBtn, prob),
      el("div", { class: "ctl-row" }, el("span", { class: "k", text: "partition" }), allowList, allowBtn, allowAllBtn));
    parts.tree = el("div", { class: "tree" },
      el("div", { class: "proc head" },
        el("span", { class: "pcell", text: "process" }), el("span", { class: "pcell", text: "pid" }),
        el("span", { class: "pcell", text: "status" }), el("span", { class: "pcell num", text: "mailbox" }),
        el("span", { class: "pcell num", text: "restarts" }), el("span", { class: "pcell" })));
    parts.error = el("div", { class: "error", hidden: "" });
    const title = el("h2", { class: "node-name", text: name });
    const addr = el("span", { class: "addr", text: n.addr });
    parts.card = el("article", { class: "node", "data-node": name },
      el("div", { class: "node-head" }, el("div", {}, title, addr), badges),
      parts.error, peers, grid, controls, parts.tree);
    Object.assign(parts, { badges, peers, stats, deafBtn, unrelBtn, controls });
    if (!token) for (const b of parts.card.querySelectorAll("button, input")) b.disabled = true;
    return parts;
  }

  function badge(text, cls) {
    return el("span", { class: `badge ${cls}`, text });
  }

  function updateCard(parts, n) {
    const s = n.status;
    parts.card.classList.toggle("down", !s);
    parts.error.hidden = !n.error;
    if (n.error) setText(parts.error, `does not answer: ${n.error}`);
    const bs = [];
    if (n.leader) bs.push(badge("leader", "leader"));
    if (s) {
      bs.push(badge(s.mode, "mode"));
      if (!s.paxos.alive) bs.push(badge("paxos down", "fault"));
      if (s.faults.deaf) bs.push(badge("deaf", "fault fault-deaf"));
      if (s.faults.drop > 0) bs.push(badge(`unreliable ${Math.round(s.faults.drop * 100)}%`, "fault fault-unreliable"));
      if (s.faults.allow) bs.push(badge(`partition: ${s.faults.allow.map((x) => x.split("@")[0]).join(", ")}`, "fault fault-allow"));
      if (!s.faults.deaf && s.faults.drop === 0 && !s.faults.allow) bs.push(badge("no faults", "ok"));
    } else {
      bs.push(badge("unreachable", "fault"));
    }
    const key = bs.map((b) => b.className + b.textContent).join("|");
    if (parts.badgeKey !== key) {
      parts.badges.replaceChildren(...bs);
      parts.badgeKey = key;
    }
    // A node that does not answer shows no stale figures, and offers no controls.
    parts.controls.hidden = !s;
    parts.tree.hidden = !s;
    if (!s) {
      for (const st of Object.values(parts.stats)) setText(st.value, "–");
      return;
    }
    parts.deaf = s.faults.deaf;
    parts.unreliable = s.faults.drop > 0;
    setText(parts.deafBtn, s.faults.deaf ? "listen" : "deaf");
    setText(parts.unrelBtn, s.faults.drop > 0 ? "reliable" : "unreliable");
    const peersKey = s.connected.join(",");
    if (parts.peersKey !== peersKey) {
      parts.peers.replaceChildren(el("span", { class: "k", text: "connected" }),
        ...(s.connected.length ? s.connected.map((p) => el("span", { class: "peer", text: p })) : [el("span", { class: "muted", text: "nobody" })]));
      parts.peersKey = peersKey;
    }
    const st = parts.stats;
    setText(st.max.value, fmt(s.paxos.max));
    setText(st.min.value, fmt(s.paxos.min));
    setText(st.held.value, fmt(s.paxos.held));
    setText(st.lost.value, fmt(s.kv.proposals_lost));
    setText(st.keys.value, fmt(s.kv.keys));
    setText(st.applied.value, fmt(s.kv.applied));
    setText(st.read.value, fmt(s.kv.ops.read));
    setText(st.write.value, fmt(s.kv.ops.write));
    setText(st.write_hash.value, fmt(s.kv.ops.write_hash));
    const answered = s.kv.ops.latency_buckets.reduce((a, b) => a + b, 0);
    setText(st.latency.value, answered ? `${(s.kv.ops.latency_sum_micros / answered / 1000).toFixed(1)} ms` : "–");
    setText(st.procs.value, fmt(s.traffic.processes));
    const d = s.traffic.dropped_by;
    setText(st.dropped.value, fmt(d.deaf + d.cut + d.lost_in + d.lost_out));
    st.dropped.box.title = `deaf ${d.deaf}, partition ${d.cut}, unreliable ${d.lost_in + d.lost_out} (in ${d.lost_in}, out ${d.lost_out})`;
    if (n.tree) {
      if (parts.rows.size === 0) treeRow(n.name, n.tree, 0, parts);
      const walk = (t) => {
        const r = parts.rows.get(t.name);
        if (r) {
          // The node's name is on the card: the pid shows its local part.
          setText(r.pid, t.pid ? t.pid.replace(`<${n.name}.`, "<") : "–");
          r.pid.title = t.pid || "";
          setText(r.status, t.status);
          r.row.classList.toggle("stopped", t.status !== "running");
          setText(r.mailbox, fmt(t.mailbox));
          setText(r.restarts, fmt(t.restarts));
          r.row.classList.toggle("restarted", t.restarts > 0);
          if (!token) r.kill.disabled = true;
        }
        t.children.forEach(walk);
      };
      walk(n.tree);
    }
  }

  // ------------------------------------------------------------------ figures and chart
  const figures = {};
  function drawFigures(v) {
    const box = document.getElementById("figures");
    if (!figures.made) {
      for (const s of SERIES) {
        figures[s.key] = stat(`${s.label} /s`);
        figures[s.key].box.style.setProperty("--accent", s.color);
        box.append(figures[s.key].box);
      }
      figures.made = true;
      document.getElementById("legend").replaceChildren(...SERIES.map((s) =>
        el("span", { class: "key" }, el("i", { style: `background:${s.color}` }), el("span", { text: s.label }))));
    }
    for (const s of SERIES) setText(figures[s.key].value, fmt(v.rates[s.key]));
  }

  function drawChart(points) {
    const svg = document.getElementById("chart");
    const W = 800, H = 160, PAD = 6;
    let max = 1;
    for (const p of points) for (const s of SERIES) max = Math.max(max, p[s.key]);
    const span = 5 * 60 * 1000;
    const end = points.length ? points[points.length - 1].at_ms : 0;
    const x = (t) => W - ((end - t) / span) * W;
    const y = (val) => H - PAD - (val / max) * (H - 2 * PAD);
    const ns = "http://www.w3.org/2000/svg";
    const kids = [];
    for (const g of [0.25, 0.5, 0.75]) {
      const line = document.createElementNS(ns, "line");
      line.setAttribute("x1", 0); line.setAttribute("x2", W);
      line.setAttribute("y1", y(max * g)); line.setAttribute("y2", y(max * g));
      line.setAttribute("class", "grid");
      kids.push(line);
    }
    for (const s of SERIES) {
      const pl = document.createElementNS(ns, "polyline");
      pl.setAttribute("points", points.map((p) => `${x(p.at_ms).toFixed(1)},${y(p[s.key]).toFixed(1)}`).join(" "));
      pl.setAttribute("stroke", s.color);
      pl.setAttribute("class", "series");
      kids.push(pl);
    }
    svg.replaceChildren(...kids);
    setText(document.getElementById("chart-max"), `max ${fmt(max)}/s`);
  }

  // ------------------------------------------------------------------ events
  let eventsKey = "";
  function drawEvents(v) {
    const key = v.events.length + ":" + (v.events.length ? v.events[v.events.length - 1].at_ms + v.events[v.events.length - 1].text : "");
    if (key === eventsKey) return;
    eventsKey = key;
    const now = Date.now();
    const list = document.getElementById("events");
    const items = v.events.slice().reverse().map((e) => {
      const when = new Date(now - (v.at_ms - e.at_ms));
      return el("li", { class: `ev ev-${e.kind}` },
        el("time", { text: when.toLocaleTimeString("en-GB") }),
        el("span", { class: "ev-kind", text: e.kind }),
        el("span", { class: "ev-where", text: e.node ? e.node.split("@")[0] : "cluster" }),
        el("span", { class: "ev-text", text: e.text }));
    });
    if (!items.length) items.push(el("li", { class: "muted", text: "nothing yet: kill a process or set a fault" }));
    list.replaceChildren(...items);
  }

  // ------------------------------------------------------------------ the whole view
  function draw(v) {
    const nodesBox = document.getElementById("nodes");
    const names = v.nodes.map((n) => n.name);
    for (const n of v.nodes) {
      let parts = cards.get(n.name);
      if (!parts) {
        parts = makeCard(n, names);
        cards.set(n.name, parts);
        nodesBox.append(parts.card);
      }
      updateCard(parts, n);
    }
    const up = v.nodes.filter((n) => n.status).length;
    const summary = document.getElementById("summary");
    const leader = v.leader ? v.leader : "none (every node proposes)";
    const sKey = `${up}/${v.nodes.length}/${leader}`;
    if (summary.dataset.key !== sKey) {
      summary.replaceChildren(
        el("span", {}, el("b", { text: `${up}/${v.nodes.length}` }), el("span", { text: " nodes answering" })),
        el("span", {}, el("span", { text: "leader & lease holder " }), el("b", { text: leader })));
      summary.dataset.key = sKey;
    }
    drawFigures(v);
    drawChart(v.chart);
    drawEvents(v);
  }

  // ------------------------------------------------------------------ the feed
  function connect() {
    const live = document.getElementById("live");
    const src = new EventSource("/api/events");
    src.addEventListener("view", (e) => {
      live.textContent = "live";
      live.className = "pill on";
      try {
        draw(JSON.parse(e.data));
      } catch (err) {
        console.error(err);
      }
    });
    src.onerror = () => {
      live.textContent = "reconnecting…";
      live.className = "pill off";
    };
  }

  const modeBadge = document.getElementById("mode-badge");
  if (token) {
    modeBadge.textContent = "controls on";
    modeBadge.className = "pill on";
  } else {
    const notice = document.getElementById("notice");
    notice.hidden = false;
    notice.textContent = "Read-only: controls need the token. Open the address the command line printed at start (it ends in #token=…).";
  }
  connect();
})();
