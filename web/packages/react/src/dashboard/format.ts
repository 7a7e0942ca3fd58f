/** Short durations for the dashboard. */

/** `42 s`, `7 min`, `1.5 h`. */
export function ago(secs: number): string {
  if (secs < 60) return `${Math.round(secs)} s`;
  if (secs < 3600) return `${Math.round(secs / 60)} min`;
  return `${(secs / 3600).toFixed(1)} h`;
}
