// Times as the console shows them: in its configured zone (from /api/scheduler), with the zone's name.
let zone = "UTC";

export function useZone(name) {
  zone = name || "UTC";
}

export function consoleZone() {
  return zone;
}

// 2026-12-02 14:30:05 Asia/Seoul
export function when(time) {
  if (!time) return "";
  const parts = new Intl.DateTimeFormat("sv-SE", {
    timeZone: zone,
    year: "numeric",
    month: "2-digit",
    day: "2-digit",
    hour: "2-digit",
    minute: "2-digit",
    second: "2-digit",
    hour12: false,
  }).format(new Date(time));
  return `${parts} ${zone}`;
}

export function duration(seconds) {
  if (seconds === null || seconds === undefined) return "";
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  if (h) return `${h} h ${m} min`;
  return m ? `${m} min ${s % 60} s` : `${s} s`;
}
