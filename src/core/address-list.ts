/**
 * IPv4/IPv6 CIDR allow-lists over `node:net`'s BlockList: parsing (`10.0.0.0/8`, `2001:db8::/32`, or a bare
 * address as a one-host range) and matching a client address, IPv4-mapped IPv6 (`::ffff:10.1.2.3`, what a
 * dual-stack socket reports for an IPv4 peer) matched as the IPv4 address it carries. Used by the allowedIP
 * instance policy (keys/instance-policies.ts) and the HTTP layer's trusted proxies.
 */
import { BlockList, isIP } from 'node:net'

/** A parsed CIDR list: `matches(address)` answers synchronously. */
export interface AddressList {
  readonly cidrs: readonly string[]
  matches(address: string | undefined): boolean
}

/** `address` as BlockList wants it: zone id dropped, IPv4-mapped IPv6 as IPv4; undefined if not an IP. */
export function normalizeAddress(
  address: string | undefined,
): { address: string; family: 4 | 6 } | undefined {
  if (address === undefined) return undefined
  let a = address.trim()
  const zone = a.indexOf('%')
  if (zone >= 0) a = a.slice(0, zone)
  const mapped = /^::ffff:(\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3})$/i.exec(a)
  if (mapped?.[1] !== undefined) a = mapped[1]
  const family = isIP(a)
  return family === 4 || family === 6 ? { address: a, family } : undefined
}

/**
 * Parses one CIDR (or bare address). Returns the canonical text and the pieces, or a reason it is invalid.
 */
export function parseCidr(
  text: string,
): { ok: true; network: string; prefix: number; family: 4 | 6 } | { ok: false; reason: string } {
  const slash = text.indexOf('/')
  const addr = slash < 0 ? text : text.slice(0, slash)
  const family = isIP(addr)
  if (family !== 4 && family !== 6) return { ok: false, reason: `"${text}" is not an IPv4 or IPv6 address` }
  const max = family === 4 ? 32 : 128
  let prefix = max
  if (slash >= 0) {
    const p = text.slice(slash + 1)
    if (!/^\d{1,3}$/.test(p) || Number(p) > max) {
      return { ok: false, reason: `"${text}": the prefix length must be 0 to ${max}` }
    }
    prefix = Number(p)
  }
  return { ok: true, network: addr, prefix, family }
}

/**
 * Builds an {@link AddressList}.
 * @throws Error naming the first invalid entry (callers turn it into their own typed error)
 */
export function addressList(cidrs: readonly string[]): AddressList {
  const list = new BlockList()
  for (const c of cidrs) {
    const p = parseCidr(c)
    if (!p.ok) throw new Error(p.reason)
    list.addSubnet(p.network, p.prefix, p.family === 4 ? 'ipv4' : 'ipv6')
  }
  return {
    cidrs: [...cidrs],
    matches(address) {
      const n = normalizeAddress(address)
      return n !== undefined && list.check(n.address, n.family === 4 ? 'ipv4' : 'ipv6')
    },
  }
}
