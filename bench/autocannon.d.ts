/** The parts of autocannon's API the HTTP benchmark uses (the package ships no types). */
declare module 'autocannon' {
  interface Options {
    url: string
    method?: string
    headers?: Record<string, string>
    body?: string
    connections?: number
    pipelining?: number
    duration?: number
    amount?: number
    workers?: number
  }
  interface Histogram {
    average: number
    mean: number
    p50: number
    p99: number
    max: number
    total: number
  }
  interface Result {
    requests: Histogram
    latency: Histogram
    non2xx: number
    errors: number
    timeouts: number
    '2xx': number
  }
  function autocannon(opts: Options): Promise<Result>
  export default autocannon
}
