/**
 * Waits for `p` at most `ms`, whichever comes first; a rejection of `p` ends the wait like a
 * resolution. The timer is cleared when `p` settles first, so nothing lingers. @internal
 */
export async function within(p: Promise<unknown>, ms: number): Promise<void> {
  let t: NodeJS.Timeout | undefined;
  await Promise.race([p.catch(() => {}), new Promise<void>((r) => (t = setTimeout(r, ms)))]);
  clearTimeout(t);
}
