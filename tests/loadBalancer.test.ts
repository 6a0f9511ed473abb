// The LB under mocks per certificate mode: address, instance, DNS, certificate access, no secret.
import { parameterName } from "../model/naming";
import { Plan } from "../plan/plan";
import { revealSecrets } from "../plan/secrets";
import {
  T,
  TOPOLOGY,
  bundleObject,
  generatedSecrets,
  grantsOf,
  ofType,
  one,
  planConfig,
  userDataText,
} from "./harness";

describe("the program, per certificate mode", () => {
  const plans: Record<string, Plan> = {};
  beforeAll(async () => {
    plans["self-signed"] = await planConfig({ domain: "www.example.com" });
    plans.letsencrypt = await planConfig({
      domain: "www.example.com",
      hostedZone: "example.com",
      certificate: "letsencrypt",
      acmeEmail: "ops@example.com",
    });
    plans.acm = await planConfig({
      domain: "www.example.com",
      hostedZone: "example.com",
      certificate: "acm",
    });
  });

  test.each(["self-signed", "letsencrypt", "acm"])(
    "%s: an Elastic IP on the LB's interface before it boots",
    (mode) => {
      const plan = plans[mode];
      const eni = one(plan, T.networkInterface, "lb-eni");
      expect(eni.inputs).toMatchObject({
        subnetId: one(plan, T.subnet, "network-public").id,
        privateIps: [TOPOLOGY.nodes.lb.privateIp],
        securityGroups: [one(plan, T.securityGroup, "firewalls-lb").id],
      });
      const eip = one(plan, T.eip, "lb-eip");
      expect(eip.inputs.domain).toBe("vpc");
      const association = one(plan, T.eipAssociation, "lb-eip-association");
      expect(association.inputs).toEqual({
        allocationId: eip.outputs.allocationId,
        networkInterfaceId: eni.id,
      });
      const instance = one(plan, T.instance, "lb-instance");
      // Its first boot fetches its bundle: the pointer exists before the instance does.
      expect(instance.options).toEqual({
        dependsOn: [association.urn, one(plan, T.ssmParameter, "bundles-lb-pointer").urn],
        deleteBeforeReplace: true,
      });
      expect(instance.inputs).toMatchObject({
        primaryNetworkInterface: { networkInterfaceId: eni.id },
        iamInstanceProfile: one(plan, T.instanceProfile, "lb-identity-profile").outputs.name,
        userDataReplaceOnChange: true,
        monitoring: true,
        metadataOptions: { httpTokens: "required", httpPutResponseHopLimit: 1 },
        rootBlockDevice: { encrypted: true, volumeType: "gp3" },
      });
      expect(plan.outputs.loadBalancer).toEqual({
        instanceId: instance.id,
        publicIp: eip.outputs.publicIp,
        privateIp: TOPOLOGY.nodes.lb.privateIp,
        internalName: TOPOLOGY.nodes.lb.internalName,
      });
      expect(plan.outputs.url).toBe("https://www.example.com/");
      expect(plan.outputs.certificateMode).toBe(mode);
    },
  );

  test("the A record exists only with a hosted zone, pointing at the Elastic IP", () => {
    expect(ofType(plans["self-signed"], T.route53Record)).toEqual([]);
    expect(plans["self-signed"].outputs.dnsRecordManaged).toBe(false);
    const plan = plans.letsencrypt;
    expect(one(plan, T.route53Record, "lb-dns").inputs).toMatchObject({
      name: "www.example.com",
      type: "A",
      ttl: 60,
      records: [one(plan, T.eip, "lb-eip").outputs.publicIp],
    });
    expect(plan.outputs.dnsRecordManaged).toBe(true);
  });

  test("self-signed: a certificate for the domain via SSM; the LB's role gets nothing more", () => {
    const plan = plans["self-signed"];
    expect(one(plan, T.selfSignedCert, "certificate-self-signed").inputs).toMatchObject({
      dnsNames: ["www.example.com"],
      subject: { commonName: "www.example.com" },
      allowedUses: ["digital_signature", "key_encipherment", "server_auth"],
    });
    expect(one(plan, T.ssmParameter, "certificate-site-key").inputs).toMatchObject({
      name: parameterName(plan.stack, "lb", "site-key"),
      type: "SecureString",
    });
    expect(one(plan, T.ssmParameter, "certificate-site-cert").inputs).toMatchObject({
      type: "String",
    });
    expect(ofType(plan, T.rolePolicy).filter((p) => p.name === "lb-certificate-access")).toEqual(
      [],
    );
    expect(ofType(plan, T.acmCertificate)).toEqual([]);
  });

  test("letsencrypt: the LB may write exactly its own site-pem parameter, encrypted with the stack's key", () => {
    const plan = plans.letsencrypt;
    const parameter = one(plan, T.ssmParameter, "certificate-site-pem");
    expect(parameter.inputs).toMatchObject({
      name: parameterName(plan.stack, "lb", "site-pem"),
      type: "SecureString",
      value: "none",
    });
    expect(parameter.options).toEqual({ ignoreChanges: ["value"] });
    const grants = grantsOf(one(plan, T.rolePolicy, "lb-certificate-access").inputs.policy);
    // Put this one parameter, and encrypt only through SSM, only for this parameter's value.
    expect(grants).toEqual([
      {
        actions: ["kms:Encrypt", "kms:GenerateDataKey"],
        resources: [one(plan, T.kmsKey, "parameters-key").outputs.arn],
        condition: {
          StringEquals: {
            "kms:ViaService": "ssm.eu-west-1.amazonaws.com",
            "kms:EncryptionContext:PARAMETER_ARN": parameter.outputs.arn,
          },
        },
      },
      { actions: ["ssm:PutParameter"], resources: [parameter.outputs.arn] },
    ]);
    expect(one(plan, T.rolePolicy, "lb-certificate-access").inputs.role).toBe(
      one(plan, T.role, "lb-identity-role").outputs.name,
    );
  });

  test("acm: an exportable certificate validated by DNS in the zone; export scoped to its ARN", () => {
    const plan = plans.acm;
    const cert = one(plan, T.acmCertificate, "certificate-acm");
    expect(cert.inputs).toMatchObject({
      domainName: "www.example.com",
      validationMethod: "DNS",
      options: { export: "ENABLED" },
    });
    const validation = (cert.outputs.domainValidationOptions as Record<string, string>[])[0];
    expect(one(plan, T.route53Record, "certificate-acm-validation").inputs).toMatchObject({
      name: validation.resourceRecordName,
      type: "CNAME",
      records: [validation.resourceRecordValue],
    });
    expect(one(plan, T.acmValidation, "certificate-acm-validated").inputs.certificateArn).toBe(
      cert.outputs.arn,
    );
    // Export exactly this certificate, nothing else.
    expect(grantsOf(one(plan, T.rolePolicy, "lb-certificate-access").inputs.policy)).toEqual([
      { actions: ["acm:ExportCertificate"], resources: [cert.outputs.arn] },
    ]);
    expect(one(plan, T.ssmParameter, "certificate-acm-passphrase").inputs).toMatchObject({
      type: "SecureString",
    });
  });

  test.each(["self-signed", "letsencrypt", "acm"])(
    "%s: nothing secret in the LB's user-data or bundle",
    (mode) => {
      const plan = plans[mode];
      const [text, bundle] = [
        userDataText(plan, "lb"),
        String(bundleObject(plan, "lb").inputs.content),
      ];
      const secrets = generatedSecrets(plan);
      expect(secrets.length).toBeGreaterThan(0);
      for (const secret of secrets) {
        expect(text).not.toContain(secret);
        expect(bundle).not.toContain(secret);
      }
      expect(text).not.toMatch(/PRIVATE KEY/);
      expect(bundle).not.toMatch(/PRIVATE KEY/);
      // The backends' CA travels in the bundle; the LB's parameters are named, never valued.
      expect(bundle).toContain(
        String(one(plan, T.selfSignedCert, "pki-ca").outputs.certPem).split("\n")[1],
      );
      expect(JSON.stringify(revealSecrets(plan.outputs))).not.toMatch(/mock-secret/);
    },
  );
});
