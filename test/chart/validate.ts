import { ServiceMonitor } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1'
import { DaemonSet } from 'kubernetes-models/apps/v1'
import { Job } from 'kubernetes-models/batch/v1'
import { NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1'
import { ConfigMap, Secret, Service, ServiceAccount } from 'kubernetes-models/v1'
import type { K8sObject } from './render.js'

type Model = new (data: never) => { validate(): void }

const MODELS: Record<string, Model> = {
  'v1/ServiceAccount': ServiceAccount as unknown as Model,
  'v1/Service': Service as unknown as Model,
  'v1/ConfigMap': ConfigMap as unknown as Model,
  'v1/Secret': Secret as unknown as Model,
  'apps/v1/DaemonSet': DaemonSet as unknown as Model,
  'batch/v1/Job': Job as unknown as Model,
  'networking.k8s.io/v1/NetworkPolicy': NetworkPolicy as unknown as Model,
  'monitoring.coreos.com/v1/ServiceMonitor': ServiceMonitor as unknown as Model,
}

/** Validates an object against the Kubernetes (or prometheus-operator) OpenAPI schema of its kind; throws what is wrong. */
export function validateObject(object: K8sObject): void {
  const model = MODELS[`${object.apiVersion}/${object.kind}`]
  if (!model) throw new Error(`no schema for ${object.apiVersion}/${object.kind}: add its model to test/chart/validate.ts`)
  try {
    new model(object as never).validate()
  } catch (err) {
    throw new Error(`${object.kind}/${object.metadata.name} is invalid: ${(err as Error).message}`)
  }
}
