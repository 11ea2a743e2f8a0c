/**
 * Bytes held together by a family of bounded buffers of the pod, against one bound: the feeds'
 * windows (WINDOW_TOTAL_BYTES), the shared replays' rings (REPLAY_SHARED_BUFFER_BYTES). A buffer
 * counts what it pushes and gives back what it drops; one that would pass the bound makes room
 * first, its own way (a window gives up its oldest frames, a ring its members' taken ones).
 */
export class ByteBudget {
  used = 0;
  /** @param max bytes the buffers may hold together. */
  constructor(readonly max: number) {}
}
