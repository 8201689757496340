/**
 * Wraps a read so that calls with the same key while one is in flight share its answer: a thousand
 * clients of one run arriving together make one Redis read, not a thousand. Nothing is kept once
 * it answers (or fails), so the next call reads afresh: a revoked key fails at once, an ended run
 * is seen ended.
 */
export function singleFlight<R>(read: (key: string) => Promise<R>): (key: string) => Promise<R> {
  const inFlight = new Map<string, Promise<R>>();
  return (key) => {
    let answer = inFlight.get(key);
    if (!answer) {
      answer = read(key).finally(() => inFlight.delete(key));
      inFlight.set(key, answer);
    }
    return answer;
  };
}
