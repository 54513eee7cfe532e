/**
 * A line chart as SVG text, for the bench's TPS-vs-clients figure: x is
 * categorical (the client counts, evenly spaced), y linear from zero. No
 * dependency; the output is a standalone file a README can link to.
 */

export interface Series {
  readonly name: string;
  readonly color: string;
  /** One value per x category; NaN leaves a gap. */
  readonly values: readonly number[];
}

const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;");

function niceStep(max: number, ticks: number): number {
  const raw = max / ticks;
  const mag = 10 ** Math.floor(Math.log10(raw));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * mag >= raw) return m * mag;
  return 10 * mag;
}

export function lineChart(
  title: string,
  options: { x: readonly (string | number)[]; xLabel: string; yLabel: string; series: Series[] },
): string {
  const W = 840, H = 420, L = 80, R = 300, T = 50, B = 60;
  const pw = W - L - R, ph = H - T - B;
  const all = options.series.flatMap((s) => s.values.filter((v) => Number.isFinite(v)));
  const step = niceStep(Math.max(1, ...all) * 1.05, 6);
  const yMax = Math.ceil(Math.max(1, ...all) * 1.05 / step) * step;
  const n = options.x.length;
  const xAt = (i: number) => L + (n === 1 ? pw / 2 : (i * pw) / (n - 1));
  const yAt = (v: number) => T + ph - (v / yMax) * ph;
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${L + pw / 2}" y="28" text-anchor="middle" font-size="15" font-weight="bold">${
      esc(title)
    }</text>`,
  ];
  for (let v = 0; v <= yMax + 1e-9; v += step) {
    const y = yAt(v).toFixed(1);
    out.push(
      `<line x1="${L}" y1="${y}" x2="${L + pw}" y2="${y}" stroke="#ddd"/>`,
      `<text x="${L - 8}" y="${y}" text-anchor="end" dominant-baseline="middle">${
        Math.round(v).toLocaleString("en-US")
      }</text>`,
    );
  }
  options.x.forEach((x, i) => {
    const px = xAt(i).toFixed(1);
    out.push(
      `<line x1="${px}" y1="${T}" x2="${px}" y2="${T + ph}" stroke="#eee"/>`,
      `<text x="${px}" y="${T + ph + 18}" text-anchor="middle">${esc(String(x))}</text>`,
    );
  });
  out.push(
    `<line x1="${L}" y1="${T + ph}" x2="${L + pw}" y2="${T + ph}" stroke="#333"/>`,
    `<line x1="${L}" y1="${T}" x2="${L}" y2="${T + ph}" stroke="#333"/>`,
    `<text x="${L + pw / 2}" y="${H - 18}" text-anchor="middle">${esc(options.xLabel)}</text>`,
    `<text transform="translate(20 ${T + ph / 2}) rotate(-90)" text-anchor="middle">${
      esc(options.yLabel)
    }</text>`,
  );
  options.series.forEach((s, k) => {
    const pts = s.values.map((v, i) =>
      Number.isFinite(v) ? `${xAt(i).toFixed(1)},${yAt(v).toFixed(1)}` : null
    );
    let path = "";
    let pen = false;
    for (const p of pts) {
      if (p === null) pen = false;
      else {
        path += `${pen ? "L" : "M"}${p} `;
        pen = true;
      }
    }
    out.push(`<path d="${path.trim()}" fill="none" stroke="${s.color}" stroke-width="2.5"/>`);
    for (const p of pts) {
      if (p === null) continue;
      const [cx, cy] = p.split(",");
      out.push(`<circle cx="${cx}" cy="${cy}" r="4" fill="${s.color}"/>`);
    }
    const ly = T + 10 + k * 22;
    out.push(
      `<line x1="${L + pw + 20}" y1="${ly}" x2="${
        L + pw + 44
      }" y2="${ly}" stroke="${s.color}" stroke-width="3"/>`,
      `<text x="${L + pw + 50}" y="${ly}" dominant-baseline="middle">${esc(s.name)}</text>`,
    );
  });
  out.push("</svg>");
  return out.join("\n") + "\n";
}
