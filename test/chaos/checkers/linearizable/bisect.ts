/** Binary searches over arrays sorted by a numeric key. */

/** First index whose key is >= t. */
export function lowerBound<T>(a: readonly T[], t: number, key: (x: T) => number): number {
  let lo = 0;
  let hi = a.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (key(a[mid]!) < t) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** First index whose key is > t. */
export function upperBound<T>(a: readonly T[], t: number, key: (x: T) => number): number {
  let lo = 0;
  let hi = a.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (key(a[mid]!) <= t) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
