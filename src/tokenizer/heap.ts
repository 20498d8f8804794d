/**
 * Binary-heap sifting over caller-owned parallel arrays: `better(i, j)` says whether slot i should sit above j,
 * `swap(i, j)` exchanges two slots. Used by the BPE encoder's merge queue and the trainer's pair queue.
 */
export type HeapOrder = (i: number, j: number) => boolean;
export type HeapSwap = (i: number, j: number) => void;

/** Moves slot i up until its parent is at least as good. */
export function siftUp(i: number, better: HeapOrder, swap: HeapSwap): void {
  while (i > 0) {
    const p = (i - 1) >> 1;
    if (!better(i, p)) break;
    swap(i, p);
    i = p;
  }
}

/** Removes the top of a heap of `size` slots: moves the last slot to the top and sifts it down. Returns the new size. */
export function popTop(size: number, better: HeapOrder, swap: HeapSwap): number {
  const hs = size - 1;
  swap(0, hs);
  let i = 0;
  for (;;) {
    const l = 2 * i + 1;
    if (l >= hs) break;
    let c = l;
    if (l + 1 < hs && better(l + 1, l)) c = l + 1;
    if (!better(c, i)) break;
    swap(c, i);
    i = c;
  }
  return hs;
}
