// Validates custom resources with the models npm's @kubernetes-models packages generate from
// KEDA's and Gateway API's own CRDs. Reads a JSON list of objects on stdin; prints a JSON list
// with, for each, null (valid) or the validator's message.
import { ScaledObject } from "@kubernetes-models/keda/keda.sh/v1alpha1/ScaledObject";
import { HTTPRoute } from "@kubernetes-models/gateway-api/gateway.networking.k8s.io/v1/HTTPRoute";

const models = {
  "keda.sh/v1alpha1/ScaledObject": ScaledObject,
  "gateway.networking.k8s.io/v1/HTTPRoute": HTTPRoute,
};
let input = "";
for await (const chunk of process.stdin) input += chunk;
const results = JSON.parse(input).map((object) => {
  const Model = models[`${object.apiVersion}/${object.kind}`];
  if (!Model) return `no model for ${object.apiVersion}/${object.kind}`;
  try {
    new Model(object).validate();
    return null;
  } catch (error) {
    return String(error.message);
  }
});
process.stdout.write(JSON.stringify(results));
