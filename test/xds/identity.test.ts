import { expect } from 'chai';
import { checkIdentity, parseIdentityRule } from '../../src/xds/identity.js';

describe('node identity rules', () => {
  it('parse uri: and dns: templates, refusing any without {id}', () => {
    expect(parseIdentityRule('uri:spiffe://td/ns/{cluster}/{id}')).to.deep.equal({ ok: true, value: { kind: 'uri', template: 'spiffe://td/ns/{cluster}/{id}' } });
    expect(parseIdentityRule('dns:{id}.envoys.example')).to.deep.equal({ ok: true, value: { kind: 'dns', template: '{id}.envoys.example' } });
    expect(parseIdentityRule('spiffe://td/{id}')).to.deep.equal({ ok: false, error: '"spiffe://td/{id}" is not uri:TEMPLATE or dns:TEMPLATE' });
    expect(parseIdentityRule('uri:spiffe://td/envoy')).to.deep.equal({ ok: false, error: '"uri:spiffe://td/envoy" does not use {id}: every node would share one identity' });
  });

  const rule = { kind: 'uri', template: 'spiffe://td/ns/{cluster}/{id}' } as const;
  const cert = (san: string) => ({ subjectaltname: san }) as any;
  const cases: [string, any, string | undefined][] = [
    ['its own SAN among others', cert('DNS:x, URI:spiffe://td/ns/edge/envoy-1'), undefined],
    ['another node\'s SAN', cert('URI:spiffe://td/ns/edge/envoy-2'), 'node "envoy-1" claims an identity its certificate does not prove: URI:spiffe://td/ns/edge/envoy-1 is required, the certificate names URI:spiffe://td/ns/edge/envoy-2'],
    ['the right SAN of the wrong kind', cert('DNS:spiffe://td/ns/edge/envoy-1'), 'node "envoy-1" claims an identity its certificate does not prove: URI:spiffe://td/ns/edge/envoy-1 is required, the certificate names DNS:spiffe://td/ns/edge/envoy-1'],
    ['no certificate', undefined, 'node "envoy-1" presented no client certificate; URI:spiffe://td/ns/edge/envoy-1 is required'],
  ];
  for (const [what, c, want] of cases) {
    it(`judge a node with ${what}`, () => {
      expect(checkIdentity(rule, c, { id: 'envoy-1', cluster: 'edge' })).to.equal(want);
    });
  }
});
